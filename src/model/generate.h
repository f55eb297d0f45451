// KV-cached greedy and beam-search generation with Hugging Face `generate` semantics (transformers 5.x):
// left-padded batches, EOS handling, length_penalty, early_stopping ∈ {true, false, "never"}.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "model/gpt_neo.h"

namespace lethe::model {

enum class EarlyStopping { kFalse, kTrue, kNever };

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  int64_t num_beams = 1;  // 1 = greedy
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::kFalse;
  int64_t eos_token_id = -1;  // -1 = never stop on a token
  int64_t pad_token_id = -1;  // fills finished rows; -1 = eos_token_id (HF's fallback)
};

struct GenerateResult {
  torch::Tensor sequences;  // [B, T + N] int64: prompt (as given, left padding included) + continuation
  torch::Tensor scores;     // [B] fp32 length-penalised beam score (beam search only; undefined for greedy)
};

// input_ids: [B, T] int64, left padded; attention_mask: [B, T] (1 = token) or undefined for no padding.
// Runs under NoGradGuard; restores nothing (the model has no dropout state to change).
GenerateResult generate(GptNeo& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const GenerateOptions& options);

}  // namespace lethe::model
