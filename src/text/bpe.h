// GPT-2 byte-level BPE tokenizer (also GPT-Neo's), producing the same ids as HF `tokenizers` with a ByteLevel
// pre-tokenizer (add_prefix_space=false) and <|endoftext|> as an added special token.
//
// Pipeline: split out added tokens (when allowed) -> GPT-2 regex via PCRE2 (UTF + UCP, JIT) -> each piece's
// bytes become byte tokens -> BPE merges, lowest rank first, leftmost on ties. Results per piece are cached.
//
// Known divergence from HF, whose regex engine is Oniguruma: PCRE2 counts U+180E MONGOLIAN VOWEL SEPARATOR as
// \s and Oniguruma does not, so "x \u180ey" gives [87, 220, 157, 254, 236, 88] here and [87, 28053, 254, 236,
// 88] in HF. PCRE2 10.42 (Unicode 14) and tokenizers 0.23 (newer Unicode) also class 9,392 recently assigned
// code points differently, but a sweep of all of them between letters, digits, spaces and CJK found identical
// ids: no GPT-2 merge crosses the piece boundaries they move.
//
// Thread safety: all const members may be called concurrently; copies share the tables and the cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

struct PadOptions {
  int64_t max_length = 0;  // > 0: truncate to it and pad every row to exactly it; 0: pad to the longest row
  bool pad_left = false;   // padding side (left for decoder-only generation)
  bool truncate_left = false;  // true keeps the last max_length ids, false the first
  int32_t pad_id = -1;         // -1 = eos id
};

struct BatchEncoding {
  std::vector<std::vector<int32_t>> ids;             // rectangular after padding
  std::vector<std::vector<int32_t>> attention_mask;  // 1 = real token, 0 = padding
};

class Gpt2Tokenizer {
 public:
  // dir holds vocab.json + merges.txt (HF names, tried first), tokenizer.json (HF tokenizers format,
  // model.type BPE, ByteLevel pre-tokenizer without prefix space), or encoder.json + vocab.bpe (OpenAI
  // names). Throws InputError naming the file and what was expected when files are missing or malformed.
  static Gpt2Tokenizer from_dir(const std::filesystem::path& dir);
  static Gpt2Tokenizer from_files(const std::filesystem::path& vocab_json,
                                  const std::filesystem::path& merges_txt);

  // allow_special: added tokens such as "<|endoftext|>" in the text become their ids (as HF tokenizers does);
  // otherwise they are tokenized as ordinary text. Throws InputError if text is not valid UTF-8 (HF cannot
  // take such text at all, so there is no behaviour to match), naming the byte offset.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;

  // Concatenates the tokens' bytes; ill-formed UTF-8 (ids that split a character) becomes U+FFFD as in HF's
  // decode, so the result is always valid UTF-8. Throws InputError for an id outside [0, vocab_size).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Encodes each text (allow_special = true), truncates to opt.max_length and pads. Throws InputError for a
  // negative max_length or a pad_id outside the vocabulary.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, const PadOptions& opt) const;

  int32_t eos_id() const;
  int64_t vocab_size() const;
  // Token in the byte-level alphabet ("Ġthe" for " the") or an added token ("<|endoftext|>").
  std::optional<int32_t> token_to_id(std::string_view token) const;

 private:
  struct Impl;
  explicit Gpt2Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace lethe::text
