#include "prep/knn.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/progress.h"

namespace lethe::prep {

Neighbours knn_from_distances(const torch::Tensor& d2, int64_t k) {
  // A stable sort keeps the lower pool index first among equal distances (FAISS's order for exact ties).
  auto [sorted, idx] = d2.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
  return {idx.narrow(1, 0, k).contiguous(), sorted.narrow(1, 0, k).contiguous()};
}

Neighbours exact_knn(const torch::Tensor& queries, const torch::Tensor& pool, int64_t k) {
  torch::Tensor q = queries.to(torch::kDouble), p = pool.to(torch::kDouble);
  // |q - p|² = |q|² + |p|² − 2 q·p, [Q, P]; clamped at 0 against rounding.
  torch::Tensor d2 =
      (q.pow(2).sum(1, true) + p.pow(2).sum(1).unsqueeze(0) - 2 * q.matmul(p.t())).clamp_min(0);
  return knn_from_distances(d2, k);
}

torch::Tensor tfidf_sq_distances(const torch::Tensor& rows, int64_t max_n, const torch::Tensor& query_rows) {
  const int64_t r = rows.size(0), l = rows.size(1);
  torch::Tensor c = rows.contiguous();
  const int64_t* data = c.data_ptr<int64_t>();
  // Term ids of every n-gram, and each row's sparse term counts.
  std::map<std::vector<int64_t>, int64_t> vocab;
  std::vector<std::map<int64_t, double>> tf(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i)
    for (int64_t n = 1; n <= max_n; ++n)
      for (int64_t s = 0; s + n <= l; ++s) {
        std::vector<int64_t> g(data + i * l + s, data + i * l + s + n);
        g.push_back(-n);  // keeps n-grams of different n apart
        const auto [it, fresh] = vocab.emplace(std::move(g), static_cast<int64_t>(vocab.size()));
        tf[static_cast<size_t>(i)][it->second] += 1;
      }
  std::vector<double> df(vocab.size(), 0);
  for (const auto& row : tf)
    for (const auto& [term, count] : row) df[static_cast<size_t>(term)] += 1;
  // Weighted, normalised rows and the inverted index term → (row, weight).
  std::vector<std::vector<std::pair<int64_t, double>>> postings(vocab.size());
  std::vector<std::vector<std::pair<int64_t, double>>> weighted(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i) {
    double norm = 0;
    auto& w = weighted[static_cast<size_t>(i)];
    for (const auto& [term, count] : tf[static_cast<size_t>(i)]) {
      const double idf =
          std::log((1.0 + static_cast<double>(r)) / (1.0 + df[static_cast<size_t>(term)])) + 1.0;
      w.emplace_back(term, count * idf);
      norm += count * idf * count * idf;
    }
    norm = std::sqrt(norm);
    for (auto& [term, v] : w) {
      v /= norm;
      postings[static_cast<size_t>(term)].emplace_back(i, v);
    }
  }
  torch::Tensor q = query_rows.contiguous();
  const int64_t nq = q.size(0);
  torch::Tensor d2 = torch::empty({nq, r}, torch::kDouble);
  auto out = d2.accessor<double, 2>();
  std::vector<double> dot(static_cast<size_t>(r));
  for (int64_t a = 0; a < nq; ++a) {
    std::fill(dot.begin(), dot.end(), 0.0);
    for (const auto& [term, wq] : weighted[static_cast<size_t>(q[a].item<int64_t>())])
      for (const auto& [row, w] : postings[static_cast<size_t>(term)])
        dot[static_cast<size_t>(row)] += wq * w;
    for (int64_t b = 0; b < r; ++b) out[a][b] = std::max(0.0, 2.0 - 2.0 * dot[static_cast<size_t>(b)]);
  }
  return d2;
}

torch::Tensor lm_embeddings(model::CausalLm& model, const torch::Tensor& rows, int64_t batch) {
  c10::InferenceMode guard;
  model->eval();
  Progress progress("prep: embedding rows", rows.size(0), "rows");
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < rows.size(0); s += batch) {
    torch::Tensor x = rows.narrow(0, s, std::min(batch, rows.size(0) - s)).to(model->head_weight().device());
    model::ForwardArgs args;
    args.compute_logits = false;
    torch::Tensor h = model->forward(x, args).last_hidden_state.to(torch::kFloat).mean(1);  // [b, C]
    parts.push_back(h / h.norm(2, 1, true).clamp_min(1e-12));
    progress.add(x.size(0));
  }
  return torch::cat(parts).cpu().clone();  // one copy back: the search runs in float64 on the host
}

}  // namespace lethe::prep
