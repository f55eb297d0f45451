// Nearest-neighbour search for the "analogous" set (spec icu.md §2.3) and the embedders that need no
// downloaded model. The search is exact, like FAISS IndexFlatL2: every query against every pool row.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include <string>
#include <vector>

#include "model/causal_lm.h"

namespace lethe::prep {

struct Neighbours {
  torch::Tensor ids;        // [Q, k] int64 pool row indices, nearest first (equal distances: lower index)
  torch::Tensor distances;  // [Q, k] float64 squared L2 distances
};

// Exact k-NN by squared L2 between dense embeddings: queries [Q, D], pool [P, D] (any float dtype, computed
// in float64). k ≤ P.
Neighbours exact_knn(const torch::Tensor& queries, const torch::Tensor& pool, int64_t k);

// TF-IDF over token 1..max_n-grams of rows [R, L] int64: smooth idf = ln((1 + R) / (1 + df)) + 1 over these
// rows, raw counts as tf, every row L2-normalised. Returns the squared L2 distances (2 − 2·cosine) from the
// rows `query_rows` ([Q] int64 indices) to every row, [Q, R] float64, computed through an inverted index so
// the vocabulary is never dense.
torch::Tensor tfidf_sq_distances(const torch::Tensor& rows, int64_t max_n, const torch::Tensor& query_rows);

// The LM's own sentence embedding: mean over positions of the final hidden state (after ln_f), L2
// normalised, as sentence-transformers pools MiniLM. rows [R, L] (host) → [R, C] float32 on the host,
// computed on the model's device.
torch::Tensor lm_embeddings(model::CausalLm& model, const torch::Tensor& rows, int64_t batch);

// k-NN of the query rows (indices into distances' columns) given squared distances [Q, P], excluding
// nothing: callers pass only the pool columns.
Neighbours knn_from_distances(const torch::Tensor& sq_distances, int64_t k);

}  // namespace lethe::prep
