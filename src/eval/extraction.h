// Memorisation metrics of Knowledge Unlearning / ICU on token rows (spec icu.md §6): memorisation accuracy
// (MA), extraction likelihood (EL_n), and the diversity statistics of generated ids. All take rows [B, T]
// int64 that are model inputs as they are (no padding mask: ICU passes none, and pad = EOS tokens are
// attended to).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "model/causal_lm.h"

namespace lethe::eval {

// Per-row MA: the fraction of positions t = first..T-1 whose greedy next-token prediction from x_<t equals
// x_t (ICU and KU: first = 1, every position). The model is causal, so one forward pass gives every
// prediction. rows [B, T] → [B] double; `batch` rows per forward.
std::vector<double> memorization_accuracy(model::CausalLm& model, const torch::Tensor& rows,
                                          int64_t batch = 8, int64_t first = 1);

// Which start positions EL averages over. ICU scores only the suffix region: starts first..T-n with first =
// the suffix column (150 for 200-token rows: 41 starts, "/41"). Knowledge Unlearning uses first = 1 (190
// starts).
struct ElOptions {
  int64_t n = 10;
  int64_t first = 150;
  int64_t chunk = 64;  // (row, start) continuations decoded together
  int64_t eos_token_id =
      -1;  // a continuation that emits it continues with it (HF pads finished rows); -1 = none
};

// Per-row EL_n: for each start i, greedy-continue x_<i to length T and count the continuation's n-grams
// (with multiplicity) that occur among the true x_i..x_{T-1}'s n-grams, / (T - i - n + 1); EL = the mean
// over starts. All (row, start) continuations are batched with left padding and a KV cache. rows [B, T].
std::vector<double> extraction_likelihood(model::CausalLm& model, const torch::Tensor& rows,
                                          const ElOptions& options);

// Overlap of one continuation with its label (both length L ≥ n), the inner term of EL.
double ngram_overlap(const int64_t* pred, const int64_t* label, int64_t length, int64_t n);

// Distinct-token ratio (unique ids / ids) and Shannon entropy in bits of the id unigram histogram, as ICU
// logs them for generations ("diff", "entropy"). Empty input → 0.
double distinct_ratio(const std::vector<int64_t>& ids);
double unigram_entropy(const std::vector<int64_t>& ids);

}  // namespace lethe::eval
