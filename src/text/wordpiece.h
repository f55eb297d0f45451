// BERT's uncased WordPiece tokenizer, as Hugging Face's BertTokenizer does it: the BasicTokenizer (clean
// control characters, spaces around CJK ideographs, whitespace split, lower-case + strip accents, split off
// punctuation), then greedy longest-match WordPiece with "##" continuations ([UNK] for a word that cannot be
// covered or has more than 100 characters), then [CLS] … [SEP].
//
// Unicode comes from ICU (libicu-dev): the categories (controls, Zs spaces, P* punctuation, Mn marks), NFD
// for accent stripping (Latin, Greek, Cyrillic, Arabic hamza forms, kana voicing, Hangul syllables into
// jamo) and the lower-case mapping. Two flavours differ in corner cases, both followed:
//   tokenizer.json (`tokenizers`' BertNormalizer, what sentence-transformers and transformers 5 run):
//     unassigned code points (Cn) are kept (and become [UNK]), no final-sigma rule (Σ → σ), CJK Extension
//     E from U+2B920;
//   vocab.txt (the Python BertTokenizer): Cn is dropped as a control, Python's final sigma (Σ → ς at a word
//     end), Extension E from U+2B820.
// ICU 72 knows a few characters assigned after the Unicode tables of `tokenizers` (e.g. U+2E4F
// punctuation, U+1AC0 a mark): those split or strip here where HF keeps them. tests/text/wordpiece_test.cpp
// and tests/prep/minilm_test.cpp (20,632 ICU and LAMBADA texts, the real all-MiniLM-L6-v2 vocabulary)
// check the ids against HF.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lethe::text {

class WordPieceTokenizer {
 public:
  // dir holds tokenizer.json (read first, as HF's fast tokenizer does: sentence-transformers folders such as
  // all-MiniLM-L6-v2 ship no vocab.txt) or vocab.txt (one token per line, id = line number) with an optional
  // tokenizer_config.json (do_lower_case, default true). InputError naming the file when missing, malformed
  // or asking for something this tokenizer does not do.
  static WordPieceTokenizer from_dir(const std::filesystem::path& dir);
  // A `tokenizers` JSON of a BERT WordPiece: BertNormalizer (clean_text and handle_chinese_chars on;
  // strip_accents null or equal to lowercase), BertPreTokenizer, WordPiece model ("##" continuations, at
  // most 100 characters per word), and a Bert/Template post-processor naming [CLS]/[SEP]. Its truncation and
  // padding blocks are ignored: callers pass max_length (sentence-transformers uses its max_seq_length).
  static WordPieceTokenizer from_tokenizer_json(const std::filesystem::path& file);
  static WordPieceTokenizer from_vocab(std::vector<std::string> tokens, bool lower_case = true,
                                       bool fast = false);

  // Ids of [CLS] text [SEP] (add_special) cut to max_length tokens including the specials (0 = no limit;
  // the cut drops word pieces before [SEP], as HF's truncation does).
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, size_t max_length = 0) const;
  // The BasicTokenizer + WordPiece pieces, without specials (for tests and messages).
  std::vector<std::string> tokenize(std::string_view text) const;

  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t pad_id() const { return pad_; }
  size_t vocab_size() const { return tokens_.size(); }

 private:
  std::vector<std::string> basic(std::string_view text) const;
  void wordpiece(const std::string& word, std::vector<std::string>& out) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  bool lower_ = true;
  bool fast_ = false;  // tokenizer.json semantics (see above)
  int32_t cls_ = -1, sep_ = -1, pad_ = 0, unk_ = -1;
};

}  // namespace lethe::text
