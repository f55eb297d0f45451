// KV-cached greedy and beam-search generation with Hugging Face `generate` semantics (transformers 5.x):
// left-padded batches, EOS handling, length_penalty, early_stopping ∈ {true, false, "never"}.
#pragma once

#include <torch/types.h>

#include "model/causal_lm.h"
#include "model/generate_options.h"

namespace lethe::model {

struct GenerateResult {
  torch::Tensor sequences;  // [B, T + N] int64: prompt (as given, left padding included) + continuation
  torch::Tensor scores;     // [B] fp32 length-penalised beam score (beam search only; undefined for greedy)
};

// input_ids: [B, T] int64, left padded; attention_mask: [B, T] (1 = token) or undefined for no padding.
// Runs in eval and inference mode; the model's training mode is restored afterwards.
GenerateResult generate(CausalLm& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const GenerateOptions& options);

}  // namespace lethe::model
