// Next-token cross-entropy through the tied LM head, in row chunks: the one place lethe turns final hidden
// states into a training loss (train, every unlearning objective).
//
// The plain path materialises logits [N, V], their fp32 copy, log-softmax and gradient: at 125M with
// batch 8 × 200 tokens each is ~320 MB. Here rows go through the head `chunk` at a time; for each chunk the
// forward pass also computes the chunk's gradient with respect to its hidden rows and to the head weight
// (softmax − one-hot, times W and times h), so nothing vocabulary-sized outlives the chunk and backward
// does no second head product. That is exact because the output is a *sum*: its gradient is one scalar
// that backward applies to the stored gradients. Numerics follow HF's ForCausalLMLoss: logits in the model
// dtype, upcast to fp32 for the log-softmax.
//
// Shapes: B batch, T tokens, C hidden, V vocabulary, N = B·T rows.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "model/loss_chunk.h"

namespace lethe::model {

// Σ over positions t < T-1 with labels[b, t+1] != −100 of −log softmax(hidden[b, t] · headᵀ)[labels[b, t+1]].
// hidden: [B, T, C] (model dtype), head: [V, C], labels: [B, T] int64 → scalar fp32 with gradients to hidden
// and head. chunk = 0: loss_chunk_rows(V).
torch::Tensor next_token_ce_sum(const torch::Tensor& hidden, const torch::Tensor& head,
                                const torch::Tensor& labels, int64_t chunk = 0);

// Per-token log-probabilities of ids[:, t+1], without gradients, in chunks: [B, T] hidden, [B, T] ids →
// [B, T-1] fp32.
torch::Tensor next_token_logprobs_chunked(const torch::Tensor& hidden, const torch::Tensor& head,
                                          const torch::Tensor& ids, int64_t chunk = 0);

}  // namespace lethe::model
