#include "eval/bertscore.h"

#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/error.h"

namespace lethe::eval {
namespace {

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

BertScorer::BertScorer(const std::filesystem::path& dir, int64_t layer, torch::Device device)
    : bert_(model::Bert::load(dir, layer, device)), tok_(text::WordPieceTokenizer::from_dir(dir)) {
  LETHE_CHECK_INPUT(static_cast<int64_t>(tok_.vocab_size()) <= bert_.config().vocab_size,
                    "{}: vocab.txt has {} tokens, the model {}", dir.string(), tok_.vocab_size(),
                    bert_.config().vocab_size);
}

std::vector<BertScorer::Embedded> BertScorer::embed(const std::vector<std::string>& texts,
                                                    int64_t batch) const {
  c10::InferenceMode guard;
  const auto max_len = static_cast<size_t>(bert_.config().max_position_embeddings);
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& t : texts) ids.push_back(tok_.encode(strip(t), true, max_len));
  std::vector<Embedded> out(texts.size());
  for (size_t s = 0; s < ids.size(); s += static_cast<size_t>(batch)) {
    const size_t e = std::min(ids.size(), s + static_cast<size_t>(batch));
    size_t longest = 0;
    for (size_t i = s; i < e; ++i) longest = std::max(longest, ids[i].size());
    const auto n = static_cast<int64_t>(e - s), len = static_cast<int64_t>(longest);
    // Ids, mask and weights are laid out on the host and copied to the encoder's device once per batch.
    // Weight 1 per word piece, 0 for [CLS] and [SEP] wherever they occur (bert_score's idf-free weights).
    torch::Tensor x = torch::full({n, len}, tok_.pad_id(), torch::kLong),
                  m = torch::zeros({n, len}, torch::kLong), w = torch::zeros({n, len}, torch::kDouble);
    auto xa = x.accessor<int64_t, 2>();
    auto ma = m.accessor<int64_t, 2>();
    auto wa = w.accessor<double, 2>();
    for (size_t i = s; i < e; ++i) {
      const auto r = static_cast<int64_t>(i - s);
      for (size_t k = 0; k < ids[i].size(); ++k) {
        const auto kk = static_cast<int64_t>(k);
        xa[r][kk] = ids[i][k];
        ma[r][kk] = 1;
        wa[r][kk] = ids[i][k] == tok_.cls_id() || ids[i][k] == tok_.sep_id() ? 0.0 : 1.0;
      }
    }
    const torch::Tensor h = bert_.forward(x, m);  // [n, len, C] on the encoder's device
    w = w.to(h.device());
    for (size_t i = s; i < e; ++i) {
      const auto r = static_cast<int64_t>(i - s), k = static_cast<int64_t>(ids[i].size());
      torch::Tensor v = h[r].narrow(0, 0, k);
      out[i] = {v / v.norm(2, 1, true), w[r].narrow(0, 0, k)};
    }
  }
  return out;
}

std::vector<std::array<double, 3>> BertScorer::score(const std::vector<std::string>& candidates,
                                                     const std::vector<std::string>& references,
                                                     int64_t batch) const {
  LETHE_CHECK_INPUT(candidates.size() == references.size(), "BERTScore: {} candidates for {} references",
                    candidates.size(), references.size());
  const std::vector<Embedded> c = embed(candidates, batch), r = embed(references, batch);
  // Per pair: P and R as 0-dim device tensors, read back together at the end (no sync per pair).
  std::vector<torch::Tensor> pr;
  std::vector<uint8_t> empty;
  for (size_t s0 = 0; s0 < c.size(); s0 += static_cast<size_t>(batch)) {
    // bert_score pads each side to its longest text in the batch of pairs, and a padded position scores a
    // cosine of exactly 0: it wins the max for a token whose every real cosine is negative. Reproduced.
    const size_t s1 = std::min(c.size(), s0 + static_cast<size_t>(batch));
    int64_t longest_c = 0, longest_r = 0;
    for (size_t i = s0; i < s1; ++i) {
      longest_c = std::max(longest_c, c[i].vectors.size(0));
      longest_r = std::max(longest_r, r[i].vectors.size(0));
    }
    for (size_t i = s0; i < s1; ++i) {
      const int64_t tc = c[i].vectors.size(0), tr = r[i].vectors.size(0);
      empty.push_back(tc <= 2 || tr <= 2);  // only [CLS] [SEP]: an empty text scores 0
      if (empty.back()) continue;
      torch::Tensor sim = c[i].vectors.matmul(r[i].vectors.t());  // [Tc, Tr]
      torch::Tensor best_p = std::get<0>(sim.max(1)), best_r = std::get<0>(sim.max(0));
      if (tr < longest_r) best_p = best_p.clamp_min(0);
      if (tc < longest_c) best_r = best_r.clamp_min(0);
      // The max runs over all tokens; the weighted mean skips [CLS] and [SEP] (weight 0; NaN when all are).
      pr.push_back((best_p.to(torch::kDouble) * c[i].weights).sum() / c[i].weights.sum());
      pr.push_back((best_r.to(torch::kDouble) * r[i].weights).sum() / r[i].weights.sum());
    }
  }
  const torch::Tensor host = pr.empty() ? torch::zeros({0}, torch::kDouble) : torch::stack(pr).cpu();
  const double* v = host.data_ptr<double>();
  std::vector<std::array<double, 3>> out;
  for (uint8_t e : empty) {
    if (e) {
      out.push_back({0.0, 0.0, 0.0});
      continue;
    }
    const double p = v[0], rr = v[1];
    v += 2;
    double f = 2 * p * rr / (p + rr);
    if (std::isnan(f)) f = 0;
    out.push_back({p, rr, f});
  }
  return out;
}

}  // namespace lethe::eval
