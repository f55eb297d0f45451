#include "eval/extraction.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/error.h"
#include "model/generate.h"

namespace lethe::eval {

std::vector<double> memorization_accuracy(model::GptNeo& model, const torch::Tensor& rows, int64_t batch,
                                          int64_t first) {
  c10::InferenceMode guard;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t b = rows.size(0), t = rows.size(1);
  LETHE_CHECK_INPUT(first >= 1 && first < t, "MA from position {}: rows have {} tokens", first, t);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(b));
  for (int64_t s = 0; s < b; s += batch) {
    torch::Tensor x = rows.narrow(0, s, std::min(batch, b - s));
    // Greedy prediction at positions first-1..T-2, [b', T-first], compared with the next token.
    torch::Tensor pred = model->forward(x).logits.narrow(1, first - 1, t - first).argmax(-1);
    torch::Tensor acc = (pred == x.narrow(1, first, t - first)).to(torch::kDouble).mean(1);
    for (int64_t r = 0; r < acc.size(0); ++r) out.push_back(acc[r].item<double>());
  }
  model->train(was_training);
  return out;
}

double ngram_overlap(const int64_t* pred, const int64_t* label, int64_t length, int64_t n) {
  const int64_t grams = length - n + 1;
  std::set<std::vector<int64_t>> truth;
  for (int64_t i = 0; i < grams; ++i) truth.emplace(label + i, label + i + n);
  int64_t hits = 0;
  for (int64_t i = 0; i < grams; ++i) hits += truth.count(std::vector<int64_t>(pred + i, pred + i + n));
  return static_cast<double>(hits) / static_cast<double>(grams);
}

std::vector<double> extraction_likelihood(model::GptNeo& model, const torch::Tensor& rows,
                                          const ElOptions& o) {
  const int64_t b = rows.size(0), t = rows.size(1);
  LETHE_CHECK_INPUT(o.n >= 1 && o.first >= 1 && o.first <= t - o.n,
                    "EL_{} from position {}: rows of {} tokens leave no start with {} label tokens", o.n,
                    o.first, t, o.n);
  // Every (row, start) pair is one continuation. Ordered by start, a chunk mostly holds prompts x_<i of one
  // length (then it needs no padding and decodes exactly T - i tokens, as the reference does); a chunk that
  // spans starts is left padded with a mask, decodes T - shortest tokens and each job reads its first T - i.
  std::vector<std::pair<int64_t, int64_t>> jobs;
  for (int64_t i = o.first; i <= t - o.n; ++i)
    for (int64_t r = 0; r < b; ++r) jobs.emplace_back(r, i);
  const int64_t max_pos = model->config().max_position_embeddings;
  torch::Tensor cpu_rows = rows.to(torch::kCPU).contiguous();
  const int64_t* data = cpu_rows.data_ptr<int64_t>();
  std::vector<double> sum(static_cast<size_t>(b), 0.0);
  model::GenerateOptions g;
  g.num_beams = 1;
  g.eos_token_id = -1;  // ICU's generate runs to the full length
  for (size_t s = 0, e = 0; s < jobs.size(); s = e) {
    // Grow the chunk while the padded decode stays inside the model's positions.
    const int64_t shortest = jobs[s].second;
    int64_t longest = shortest;
    for (e = s; e < jobs.size() && e - s < static_cast<size_t>(o.chunk); ++e) {
      if (e > s && jobs[e].second + t - shortest > max_pos) break;
      longest = jobs[e].second;
    }
    const auto m = static_cast<int64_t>(e - s);
    torch::Tensor ids = torch::zeros({m, longest}, torch::kLong),
                  mask = torch::zeros({m, longest}, torch::kLong);
    for (int64_t j = 0; j < m; ++j) {
      const auto [r, i] = jobs[s + static_cast<size_t>(j)];
      ids[j].narrow(0, longest - i, i).copy_(cpu_rows[r].narrow(0, 0, i));
      mask[j].narrow(0, longest - i, i).fill_(1);
    }
    g.max_new_tokens = t - shortest;
    torch::Tensor out = model::generate(model, ids.to(rows.device()), mask.to(rows.device()), g)
                            .sequences.narrow(1, longest, t - shortest)
                            .to(torch::kCPU)
                            .contiguous();  // [m, T - shortest]
    const int64_t* pred = out.data_ptr<int64_t>();
    for (int64_t j = 0; j < m; ++j) {
      const auto [r, i] = jobs[s + static_cast<size_t>(j)];
      sum[static_cast<size_t>(r)] += ngram_overlap(pred + j * out.size(1), data + r * t + i, t - i, o.n);
    }
  }
  const auto starts = static_cast<double>(t - o.n - o.first + 1);
  for (double& v : sum) v /= starts;
  return sum;
}

double distinct_ratio(const std::vector<int64_t>& ids) {
  if (ids.empty()) return 0;
  return static_cast<double>(std::set<int64_t>(ids.begin(), ids.end()).size()) /
         static_cast<double>(ids.size());
}

double unigram_entropy(const std::vector<int64_t>& ids) {
  std::map<int64_t, int64_t> counts;
  for (int64_t id : ids) ++counts[id];
  double h = 0;
  const auto total = static_cast<double>(ids.size());
  for (const auto& [id, c] : counts) {
    const double p = static_cast<double>(c) / total;
    h -= p * std::log2(p);
  }
  return h;
}

}  // namespace lethe::eval
