// GPT-Neo causal language model on libtorch, numerically the same as Hugging Face's GPTNeoForCausalLM; one
// family behind model/causal_lm.h.
//
// Parameter names equal the HF tensor names (`transformer.h.3.attn.attention.q_proj.weight`). The LM head is
// tied to `transformer.wte.weight` and has no parameter of its own. Learned absolute positions; layers
// alternate (or not) between global attention and local attention over a window of `window_size` keys; no
// 1/sqrt(D) scaling of attention scores.
//
// Dimension letters as in causal_lm.h (here G = H and D = C / H).
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "model/causal_lm.h"
#include "model/gpt_neo_config.h"
#include "model/layers.h"

namespace lethe::model {

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(const GptNeoConfig& cfg, AttentionKind kind);
  // x: [B, T, C]. Returns [B, T, C].
  torch::Tensor forward(const torch::Tensor& x, const AttentionMask& mask, KvCache* cache, int64_t layer);

  AttentionKind kind() const { return kind_; }

 private:
  int64_t num_heads_, head_dim_;
  AttentionKind kind_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(SelfAttention);

class BlockImpl : public DecoderBlockImpl {
 public:
  BlockImpl(const GptNeoConfig& cfg, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) override;

  AttentionKind kind() const { return attention_->kind(); }

 private:
  int64_t layer_;
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  SelfAttention attention_{nullptr};  // registered as attn.attention, HF's nesting
  torch::nn::Linear c_fc_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE(Block);

class GptNeoImpl : public CausalLmImpl {
 public:
  // Built piece by piece on `device` in `dtype`: each embedding and block moves there as soon as it exists,
  // so the host never holds the whole model in fp32 (2.7B: 10.8 GB per rank otherwise).
  explicit GptNeoImpl(const GptNeoConfig& cfg, torch::Device device = torch::kCPU,
                      torch::ScalarType dtype = torch::kFloat);

  ForwardOutput forward(const torch::Tensor& input_ids, const ForwardArgs& args = {}) override;
  torch::Tensor lm_head(const torch::Tensor& hidden) const override;
  const torch::Tensor& head_weight() const override { return wte_->weight; }
  // HF's _init_weights: N(0, initializer_range) for Linear/Embedding weights, zero biases, LayerNorm = (1,
  // 0).
  void reset_parameters(uint64_t seed) override;
  // lm_head.weight (tied) and the causal-mask buffers that transformers < 4.31 saved.
  bool ignorable_tensor(const std::string& name) const override;

  const GptNeoConfig& gpt_neo_config() const { return cfg_; }

 private:
  // The mask for one attention kind: 0 where a query may see a key, the dtype's minimum elsewhere (the
  // minimum twice where the key is also outside the causal window: HF's exact values); plain causal when
  // there is no padding, no cache and every causal key is in the window; nothing for one query seeing all.
  AttentionMask build_mask(AttentionKind kind, int64_t past, int64_t t, const torch::Tensor& attention_mask,
                           torch::ScalarType dtype, torch::Device device) const;

  GptNeoConfig cfg_;
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::ModuleList h_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE(GptNeo);

}  // namespace lethe::model
