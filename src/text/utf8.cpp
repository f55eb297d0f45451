#include "text/utf8.h"

#include <cstdint>
#include <cstring>

namespace lethe::text {
namespace {

// Length of the well-formed sequence starting at text[i], or the length of its maximal ill-formed prefix
// negated (at least 1), following the byte ranges of Unicode Table 3-7.
int sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  const std::uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  int need = 0;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return -1;
  }
  std::size_t k = i + 1;
  for (int n = 0; n < need; ++n, ++k) {
    if (k >= text.size()) return -static_cast<int>(k - i);
    const std::uint8_t b = byte(k);
    const bool ok = n == 0 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -static_cast<int>(k - i);
  }
  return need + 1;
}

}  // namespace

std::size_t utf8_valid_prefix(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    // ASCII fast path: most text is ASCII, test 8 bytes at a time.
    while (i + 8 <= text.size()) {
      std::uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof(word));
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= text.size()) break;
    const int len = sequence_length(text, i);
    if (len < 0) return i;
    i += static_cast<std::size_t>(len);
  }
  return text.size();
}

std::string to_valid_utf8(std::string_view bytes) {
  std::size_t bad = utf8_valid_prefix(bytes);
  if (bad == bytes.size()) return std::string(bytes);
  std::string out(bytes.substr(0, bad));
  out.reserve(bytes.size() + 16);
  std::size_t i = bad;
  while (i < bytes.size()) {
    const int len = sequence_length(bytes, i);
    if (len > 0) {
      out.append(bytes.substr(i, static_cast<std::size_t>(len)));
      i += static_cast<std::size_t>(len);
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      i += static_cast<std::size_t>(-len);
    }
  }
  return out;
}

}  // namespace lethe::text
