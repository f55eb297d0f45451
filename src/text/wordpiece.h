// BERT's uncased WordPiece tokenizer, as Hugging Face's BertTokenizer does it: the BasicTokenizer (clean
// control characters, spaces around CJK ideographs, whitespace split, lower-case + strip accents, split off
// punctuation), then greedy longest-match WordPiece with "##" continuations ([UNK] for a word that cannot be
// covered or has more than 100 characters), then [CLS] … [SEP].
//
// Unicode without a Unicode library: categories are tables of the ranges that occur in practice (Cc/Cf
// controls, Zs spaces, P* punctuation in Latin-1, General Punctuation, CJK symbols and fullwidth forms), and
// accents are stripped by a decomposition table for Latin-1 Supplement, Latin Extended-A, and the Greek
// tonos letters, plus dropping combining marks U+0300–U+036F. Texts outside those blocks keep their
// characters as they are; tests/text/wordpiece_test.cpp checks the result against HF's tokenizer.
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
  // dir holds vocab.txt (one token per line, id = line number) and optionally tokenizer_config.json
  // (do_lower_case, default true). InputError naming the file when missing or malformed.
  static WordPieceTokenizer from_dir(const std::filesystem::path& dir);
  static WordPieceTokenizer from_vocab(std::vector<std::string> tokens, bool lower_case = true);

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
  int32_t cls_ = -1, sep_ = -1, pad_ = 0, unk_ = -1;
};

}  // namespace lethe::text
