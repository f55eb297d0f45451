// Llama causal language model on libtorch, numerically the same as Hugging Face's LlamaForCausalLM; one
// family behind model/causal_lm.h.
//
// Parameter names equal the HF tensor names (`model.layers.3.self_attn.q_proj.weight`). Pre-norm blocks with
// RMSNorm, rotary position embeddings (default, `linear` or `llama3` frequency scaling), grouped-query
// attention (G key/value heads shared by H / G query heads each, scores scaled by 1/sqrt(D)) and a SwiGLU
// MLP. The head is `lm_head.weight`, or the token embedding when tie_word_embeddings.
//
// Dimension letters as in causal_lm.h; I is the MLP's inner width.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/causal_lm.h"
#include "model/layers.h"
#include "model/llama_config.h"

namespace lethe::model {

// HF's LlamaRMSNorm: x / sqrt(mean(x²) + eps) computed in fp32, cast back, then times the weight.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., C] → [..., C]

 private:
  double eps_;
  torch::Tensor weight_;
};
TORCH_MODULE(RmsNorm);

// The inverse rotary frequencies [D/2] fp32 of `cfg`, rope scaling applied (HF's rope init functions).
torch::Tensor rotary_inv_freq(const LlamaConfig& cfg);

class LlamaBlockImpl : public DecoderBlockImpl {
 public:
  LlamaBlockImpl(const LlamaConfig& cfg, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const BlockInputs& in, KvCache* cache) override;

 private:
  torch::Tensor attention(const torch::Tensor& x, const BlockInputs& in, KvCache* cache);  // [B, T, C]

  int64_t layer_, num_heads_, num_kv_heads_, head_dim_;
  RmsNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(LlamaBlock);

class LlamaImpl : public CausalLmImpl {
 public:
  // Built piece by piece on `device` in `dtype`, as GptNeoImpl.
  explicit LlamaImpl(const LlamaConfig& cfg, torch::Device device = torch::kCPU,
                     torch::ScalarType dtype = torch::kFloat);

  ForwardOutput forward(const torch::Tensor& input_ids, const ForwardArgs& args = {}) override;
  torch::Tensor lm_head(const torch::Tensor& hidden) const override;
  const torch::Tensor& head_weight() const override;
  // HF's _init_weights: N(0, initializer_range) for Linear/Embedding weights (the pad row zeroed), zero
  // biases, RMSNorm weights 1.
  void reset_parameters(uint64_t seed) override;
  // lm_head.weight when tied, and the rotary inv_freq buffers that transformers < 4.38 saved.
  bool ignorable_tensor(const std::string& name) const override;

  const LlamaConfig& llama_config() const { return cfg_; }

 private:
  // Rotary cos and sin [B or 1, T, D] in `dtype` for positions [B or 1, T].
  std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& positions, torch::ScalarType dtype);
  AttentionMask build_mask(int64_t past, int64_t t, const torch::Tensor& attention_mask,
                           torch::ScalarType dtype, torch::Device device) const;

  LlamaConfig cfg_;
  torch::Tensor inv_freq_;  // [D/2] fp32, on the device of the last forward (not a parameter or buffer)
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::vector<LlamaBlock> blocks_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // null when tied
};
TORCH_MODULE(Llama);

}  // namespace lethe::model
