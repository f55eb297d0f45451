// What an unlearning step optimises (spec icu.md §4, §11): ICU's three terms and the baselines that run in
// the same loop. One pair = one forget sequence and its nearest neighbour, both [T] token ids.
//
// Data parallel by construction: a rank sees only its share of the pairs, so each term is returned as a
// *sum* over this rank's tokens (or positions) divided by the *global* count that the caller all-reduced
// beforehand. The engine sums gradients over ranks, so the update equals the single-process mean loss.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "model/causal_lm.h"
#include "unlearn/method.h"

namespace lethe::unlearn {

// Whether a method needs the frozen original model (for the KL term).
bool needs_reference(Method m);

// Label-token counts of a batch of pairs, before any forward: what the terms are normalised by. Labels are
// the next tokens with every pad id (= EOS, as ICU) masked; the KL term counts every position.
struct Counts {
  double forget_tokens = 0, neighbour_tokens = 0, forget_as_neighbour_tokens = 0, positions = 0;
};
Counts count_labels(const torch::Tensor& forget, const torch::Tensor& neighbour, int64_t pad_id);

struct Terms {
  torch::Tensor loss;  // scalar with grad: this rank's share of the global loss
  // This rank's unnormalised sums, for logging the global terms: CE of the forget labels (the ascent term),
  // CE of forget inputs against neighbour labels (LLMU, PO), CE of the neighbours, KL cross-entropy summed
  // over positions. Detached scalars on the model's device, never read here (a read would stall the GPU
  // every micro-step); undefined when the method has no such term.
  torch::Tensor forget_sum, mismatch_sum, neighbour_sum, kl_sum;

  // [loss, forget, neighbour, mismatch, kl] as fp64 on the model's device (0 for absent terms), for the
  // caller to accumulate over micro-steps and read once per optimizer step.
  torch::Tensor sums() const;
};

// forget, neighbour: [b, T] int64 (active pairs only, b may be 0 → a zero loss that still touches every
// parameter, so collective gradient hooks fire on every rank). `global` = Counts summed over all ranks and
// micro-batches of the step. `reference` may be null when needs_reference(method) is false. forget_mask,
// neighbour_mask: [b, T] attention masks of left-padded rows (ICU's re-encoded rows, data/rows.h), or
// undefined when no row is padded; the KL term still covers every position, padding included, as ICU's does.
Terms compute_terms(Method method, const Weights& w, model::CausalLm& model, model::CausalLm* reference,
                    const torch::Tensor& forget, const torch::Tensor& neighbour, int64_t pad_id,
                    const Counts& global, const torch::Tensor& forget_mask = {},
                    const torch::Tensor& neighbour_mask = {});

// Labels for HF's causal-LM loss on ids: ids with pad tokens set to −100. [b, T].
torch::Tensor pad_masked_labels(const torch::Tensor& ids, int64_t pad_id);

}  // namespace lethe::unlearn
