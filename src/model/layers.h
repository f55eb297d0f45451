// Pieces the model families share, internal to src/model: the GEMM orientation for few rows, the additive
// attention mask, the inputs a decoder block gets for one forward, and activation checkpointing of a block.
#pragma once

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "model/causal_lm.h"

namespace lethe::model {

// x [..., K] · Wᵀ (+ b) → [..., N] for weight W [N, K]. Few rows take the W·xᵀ orientation (see layers.cpp).
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {});
torch::Tensor project(const torch::Tensor& x, const torch::nn::Linear& l);
// The LM head for decoding-sized inputs: hidden [..., C] · weight [V, C]ᵀ → [..., V], 4 rows at a time.
torch::Tensor head_project(const torch::Tensor& hidden, const torch::Tensor& weight);

// What attention needs for one forward: an additive float mask [B or 1, 1, T, K] (0 = visible, a large
// negative value = hidden), or plain causal attention (no tensor: SDPA's is_causal, flash-eligible), or
// nothing at all (one query seeing every key).
struct AttentionMask {
  torch::Tensor additive = {};
  bool causal = false;
  bool built = false;  // computed for this forward (GPT-Neo's local one is built lazily)
};

// Everything a block's forward reads besides its input: the mask, and rotary cos/sin [B or 1, T, D] in the
// model's dtype (undefined for families with learned positions).
struct BlockInputs {
  AttentionMask mask;
  torch::Tensor cos = {}, sin = {};
};

// One decoder block: x [B, T, C] → [B, T, C].
class DecoderBlockImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) = 0;
};

// Runs `block`, through activation checkpointing when `recompute` (see CausalLmImpl).
torch::Tensor run_block(DecoderBlockImpl& block, const torch::Tensor& x, const BlockInputs& in,
                        KvCache* cache, bool recompute);

// The dtype's most negative finite value, which HF adds to hidden scores.
double mask_minimum(torch::ScalarType dtype);

// Which keys each new query may see: key j ≤ query i (absolute slots, queries at past..past+T-1).
// Returns [T, K] bool.
torch::Tensor causal_pattern(int64_t past, int64_t t, torch::Device device);

// where(causal & key not padded, 0, dtype minimum) as fp32 [B or 1, T, K]: HF's padding-and-causal term.
// padding: [B, K] 1 = token, or undefined.
torch::Tensor padding_causal_term(const torch::Tensor& causal, const torch::Tensor& padding,
                                  torch::ScalarType dtype);

// A module with no computation of its own, only children: it reproduces HF's nesting ("transformer.",
// "model.", "mlp.") so parameter names equal the checkpoint's tensor names.
struct Holder : torch::nn::Module {};

}  // namespace lethe::model
