// UTF-8 validation and lossy repair. The tokenizer needs both: PCRE2's JIT matcher assumes valid UTF-8 (it
// skips its own check for speed), and decoded token bytes can end mid-character, which must not reach JSON
// writers (nlohmann::json throws on invalid UTF-8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lethe::text {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode Table 3-7: no overlong
// forms, no surrogates, nothing above U+10FFFF), or text.size() when the whole text is valid.
std::size_t utf8_valid_prefix(std::string_view text);

// Bytes in the UTF-8 sequence that `lead` starts (1 for ASCII and for bytes that cannot lead one).
inline std::size_t utf8_char_length(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

inline bool is_valid_utf8(std::string_view text) {
  return utf8_valid_prefix(text) == text.size();
}

// Replaces every maximal ill-formed subsequence with U+FFFD, the policy of Python's errors="replace" and
// Rust's String::from_utf8_lossy (which HF tokenizers' ByteLevel decoder uses), so decode() output matches
// theirs.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace lethe::text
