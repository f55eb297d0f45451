// A sentence embedder as ICU's data_prep.py runs one: SentenceTransformer("all-MiniLM-L6-v2").encode(texts).
// The folder is read as sentence-transformers lays it out:
//
//   <dir>/modules.json                 [Transformer (path ""), Pooling (path "1_Pooling"), Normalize]
//   <dir>/config.json, model.safetensors   the BERT encoder (model/bert.h)
//   <dir>/tokenizer.json               WordPiece (text/wordpiece.h; vocab.txt also accepted)
//   <dir>/sentence_bert_config.json    max_seq_length (word pieces kept, [CLS]/[SEP] included), do_lower_case
//   <dir>/1_Pooling/config.json        pooling_mode_{mean_tokens, cls_token, max_tokens,
//   mean_sqrt_len_tokens}
//
// A plain HF BERT folder (no modules.json) is pooled by the mean over real tokens and L2-normalised, the
// all-MiniLM-L6-v2 recipe. Other modules (Dense, ...) are refused with the module's name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "model/bert.h"
#include "text/wordpiece.h"

namespace lethe::prep {

enum class Pooling { kMean, kCls, kMax, kMeanSqrtLen };

// What modules.json and its configs declare; pure JSON reading (no weights).
struct SentenceEmbedderSpec {
  std::filesystem::path encoder_dir;  // the Transformer module's folder
  Pooling pooling = Pooling::kMean;
  bool normalize = true;
  int64_t max_seq_length = 0;          // 0 = not declared
  bool lower_case_text = false;        // sentence_bert_config.json do_lower_case
  bool sentence_transformers = false;  // modules.json present
};
SentenceEmbedderSpec read_sentence_embedder_spec(const std::filesystem::path& dir);

class SentenceEmbedder {
 public:
  // max_tokens = word pieces per text including [CLS]/[SEP]; 0 = the spec's max_seq_length, else the
  // encoder's max_position_embeddings. InputError naming the file on anything missing or unsupported.
  static SentenceEmbedder load(const std::filesystem::path& dir, int64_t max_tokens,
                               torch::Device device = torch::kCPU);

  // [N, C] float32 on the host (computed on the encoder's device). Texts are batched in order of their
  // length, as sentence-transformers does, so little padding is computed; the result is in input order.
  torch::Tensor embed(const std::vector<std::string>& texts, int64_t batch) const;

  const SentenceEmbedderSpec& spec() const { return spec_; }
  int64_t max_tokens() const { return max_tokens_; }
  // e.g. "all-MiniLM-L6-v2 (sentence-transformers: mean pooling, normalised, 256 word pieces)"
  std::string describe() const;

 private:
  SentenceEmbedder(SentenceEmbedderSpec spec, model::Bert bert, text::WordPieceTokenizer tok,
                   int64_t max_tokens)
      : spec_(std::move(spec)), bert_(std::move(bert)), tok_(std::move(tok)), max_tokens_(max_tokens) {}
  SentenceEmbedderSpec spec_;
  model::Bert bert_;
  text::WordPieceTokenizer tok_;
  int64_t max_tokens_ = 0;
};

}  // namespace lethe::prep
