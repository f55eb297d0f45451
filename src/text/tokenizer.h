// BPE tokenizers as HF `tokenizers` runs them: GPT-2's byte-level BPE (also GPT-Neo's), Llama-2's
// SentencePiece-style BPE with byte fallback and Llama-3's Split-regex byte-level BPE, all producing HF's
// ids.
//
// Pipeline (tokenizer_spec.h): added tokens split out (leftmost-longest) -> normalizer -> pre-tokenizer
// (regexes via PCRE2, UTF + UCP, JIT) -> BPE merges, lowest rank first, leftmost on ties -> optionally the
// post-processor's special tokens. Results per piece are cached.
//
// Known divergence from HF, whose regex engine is Oniguruma: PCRE2 counts U+180E MONGOLIAN VOWEL SEPARATOR as
// \s and Oniguruma does not, so "x \u180ey" gives [87, 220, 157, 254, 236, 88] here and [87, 28053, 254, 236,
// 88] in HF. PCRE2 10.42 (Unicode 14) and tokenizers 0.23 (newer Unicode) also class 9,392 recently assigned
// code points differently, but a sweep of all of them between letters, digits, spaces and CJK found identical
// ids: no GPT-2 merge crosses the piece boundaries they move. Split patterns are PCRE2 syntax, which agrees
// with Oniguruma's on what the GPT-2 and Llama-3 patterns use; \h (hex digit there, horizontal space here) is
// refused, and so is a pattern that matches the empty string while encoding (HF would split there).
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

struct TokenizerSpec;

class Tokenizer {
 public:
  // dir holds tokenizer.json (HF tokenizers format; tried first), vocab.json + merges.txt (GPT-2, HF names)
  // or encoder.json + vocab.bpe (GPT-2, OpenAI names). The end-of-sequence token is tokenizer_config.json's
  // eos_token when that file is there, else the first of <|endoftext|>, </s>, <|end_of_text|> in the
  // vocabulary. Throws InputError naming the file and field when files are missing, malformed or name a
  // component that is not implemented.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  // One tokenizer.json; eos as from_dir without a tokenizer_config.json.
  static Tokenizer from_json(const std::filesystem::path& tokenizer_json);
  static Tokenizer from_files(const std::filesystem::path& vocab_json,
                              const std::filesystem::path& merges_txt);

  // allow_special: special added tokens such as "<|endoftext|>" in the text become their ids (as HF
  // tokenizers does); otherwise they are tokenized as ordinary text. No post-processor tokens are added (HF's
  // add_special_tokens=False). Throws InputError if text is not valid UTF-8 (HF cannot take such text at
  // all, so there is no behaviour to match), naming the byte offset.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // As HF's encode(text) with add_special_tokens=True: the post-processor's tokens around encode(text), e.g.
  // <s> (Llama-2) or <|begin_of_text|> (Llama-3) before it; nothing for GPT-2. max_length > 0: the text's
  // ids are cut so that the whole fits (HF's truncation=True, right side).
  std::vector<int32_t> encode_with_specials(std::string_view text, int64_t max_length = 0) const;

  // HF tokenizers' decode: tokens through the file's decoder (GPT-2: their bytes concatenated); ill-formed
  // UTF-8 (ids that split a character) becomes U+FFFD as in HF, so the result is always valid UTF-8.
  // skip_special drops special added tokens. Throws InputError for an id outside [0, vocab_size).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Encodes each text (allow_special = true), truncates to opt.max_length and pads. Throws InputError for a
  // negative max_length or a pad_id outside the vocabulary.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, const PadOptions& opt) const;

  int32_t eos_id() const;
  // The post-processor's first token before the text (Llama's BOS), if it adds one.
  std::optional<int32_t> bos_id() const;
  int64_t vocab_size() const;
  // Token as the vocabulary spells it ("Ġthe" for GPT-2's " the", "▁the" for Llama-2's) or an added token.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;  // a special added token (skipped by decode(ids, true))

 private:
  struct Impl;
  static Tokenizer build(TokenizerSpec spec, const std::string& where);
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace lethe::text
