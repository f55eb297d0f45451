// BERTScore with bert_score 0.3.13's semantics, no idf and no baseline rescaling: each text is stripped and
// encoded as [CLS] … [SEP] (truncated to the model's positions), embedded by the BERT encoder truncated to
// `layer` layers, every token vector L2-normalised; P = mean over the candidate's word pieces of the best
// cosine against any reference token ([CLS]/[SEP] included in the max, weight 0 in the mean), R the same the
// other way, F1 = 2PR/(P+R). An empty text scores 0, as does a NaN F1.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "model/bert.h"
#include "text/wordpiece.h"

namespace lethe::eval {

class BertScorer {
 public:
  // dir: an HF BERT folder with vocab.txt (bert-base-uncased → layer 9, bert_score's table). The encoder and
  // the token vectors live on `device`; only the final {P, R, F1} come back to the host, once per call.
  BertScorer(const std::filesystem::path& dir, int64_t layer, torch::Device device = torch::kCPU);
  // {P, R, F1} per pair; `batch` = texts per forward and pairs per matching batch (bert_score's batch_size,
  // default 64: the padding quirk in score() depends on it).
  std::vector<std::array<double, 3>> score(const std::vector<std::string>& candidates,
                                           const std::vector<std::string>& references,
                                           int64_t batch = 64) const;

 private:
  struct Embedded {
    torch::Tensor vectors;  // [T_i, C] L2-normalised token embeddings, on the encoder's device
    torch::Tensor weights;  // [T_i] float64 there: 1, or 0 for [CLS] / [SEP]
  };
  std::vector<Embedded> embed(const std::vector<std::string>& texts, int64_t batch) const;
  model::Bert bert_;
  text::WordPieceTokenizer tok_;
};

}  // namespace lethe::eval
