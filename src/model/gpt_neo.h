// GPT-Neo causal language model on libtorch, numerically the same as Hugging Face's GPTNeoForCausalLM.
//
// Single-device code: the model knows nothing of communicators or sharding (architecture.md §1). Module and
// parameter names equal the HF tensor names (`transformer.h.3.attn.attention.q_proj.weight`), so checkpoint
// I/O is a name-for-name copy. The LM head is tied to `transformer.wte.weight` and has no parameter of its
// own.
//
// Dimension letters used throughout: B batch, T query length, P past (cached) length, K = P + T key length,
// C hidden size, H heads, D = C / H head size, V vocabulary.
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "model/gpt_neo_config.h"

namespace lethe::model {

// Keys and values of every layer for the tokens seen so far: keys[l], values[l] are [B, H, length, D], or,
// preallocated, [B, H, capacity, D] of which the first `length` positions are filled.
struct KvCache {
  std::vector<torch::Tensor> keys = {}, values = {};
  int64_t length = 0;
  // > 0: the first append of a layer allocates `capacity` positions and later ones write in place, instead
  // of concatenating (a copy of the whole cache per token). generate() preallocates on GPUs; on the CPU it
  // measured slower (SDPA on strided views of the larger buffer costs more than the copies save).
  int64_t capacity = 0;

  // Appends k, v [B, H, T, D] to `layer`; returns all cached keys and values, [B, H, length + T, D].
  // GptNeo::forward advances `length` once every layer has appended.
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k,
                                                 const torch::Tensor& v);
  // Keeps batch rows `index` ([B'] int64) in that order: beam search re-selects beams every step.
  void reorder(const torch::Tensor& index);
};

struct ForwardArgs {
  // [B, K] 1 = token, 0 = padding, covering cached and new tokens (HF semantics). Undefined = no padding.
  // A defined mask is used as given, never inspected (a host read per forward): leave it undefined when no
  // row is padded, so attention can run unmasked (causal kernels).
  torch::Tensor attention_mask = {};
  // [B, T] absolute positions of the new tokens. Undefined = P, P+1, ... (HF forward's default).
  torch::Tensor position_ids = {};
  KvCache* cache = nullptr;           // appended to when given
  bool output_hidden_states = false;  // fills ForwardOutput::hidden_states like HF (num_layers + 1 entries)
  bool compute_logits = true;         // false: only the final hidden state (e.g. for scoring chunk-wise)
};

struct ForwardOutput {
  torch::Tensor logits;                      // [B, T, V], the model's dtype
  torch::Tensor last_hidden_state;           // [B, T, C] after ln_f
  std::vector<torch::Tensor> hidden_states;  // input of each block, then the output after ln_f
};

// What one attention kind needs for a forward: an additive float mask [B or 1, 1, T, K] (0 = visible, the
// dtype's minimum = hidden), or plain causal attention (no tensor: SDPA's is_causal, flash-eligible), or
// nothing at all (one query seeing every key).
struct AttentionMask {
  torch::Tensor additive = {};
  bool causal = false;
  bool built = false;  // computed for this forward (the local one is built lazily)
};

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

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const GptNeoConfig& cfg, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const AttentionMask& mask, KvCache* cache);

  AttentionKind kind() const { return attention_->kind(); }

 private:
  int64_t layer_;
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  SelfAttention attention_{nullptr};  // registered as attn.attention, HF's nesting
  torch::nn::Linear c_fc_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE(Block);

class GptNeoImpl : public torch::nn::Module {
 public:
  // Built piece by piece on `device` in `dtype`: each embedding and block moves there as soon as it exists,
  // so the host never holds the whole model in fp32 (2.7B: 10.8 GB per rank otherwise).
  explicit GptNeoImpl(const GptNeoConfig& cfg, torch::Device device = torch::kCPU,
                      torch::ScalarType dtype = torch::kFloat);

  // input_ids: [B, T] int64. See ForwardArgs for the rest.
  ForwardOutput forward(const torch::Tensor& input_ids, const ForwardArgs& args = {});

  // The tied LM head alone: hidden [..., C] → logits [..., V] in the model's dtype. Lets callers that need
  // only some positions (the last one when generating, one row at a time when scoring) skip the rest.
  torch::Tensor lm_head(const torch::Tensor& hidden) const;
  // The head's weight [V, C] (= transformer.wte.weight), for losses that apply the head in chunks
  // (model/lm_loss.h).
  const torch::Tensor& head_weight() const { return wte_->weight; }

  // HF's _init_weights: N(0, initializer_range) for Linear/Embedding weights, zero biases, LayerNorm = (1,
  // 0).
  void reset_parameters(uint64_t seed);

  // Activation checkpointing: while gradients are recorded (and no KV cache is used), each block keeps only
  // its input [B, T, C]; backward runs the block again to get what it needs. The same numbers, the memory
  // of one block's activations instead of every block's, one more block forward per backward.
  void set_activation_checkpointing(bool on) { checkpoint_blocks_ = on; }

  const GptNeoConfig& config() const { return cfg_; }

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
  bool checkpoint_blocks_ = false;
};
TORCH_MODULE(GptNeo);

// Position ids as HF generation derives them under left padding: cumsum(mask) - 1, padding positions set to
// 0. mask: [B, K] → [B, K] int64.
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

// Mean next-token cross-entropy over labels != -100 (HF ForCausalLMLoss: logits upcast to fp32, labels
// shifted). logits: [B, T, V], labels: [B, T] int64.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// Per-token log-probability of each next token: [B, T-1] fp32; entry t scores ids[:, t+1] given ids[:, :t+1].
torch::Tensor next_token_logprobs(const torch::Tensor& logits, const torch::Tensor& input_ids);

}  // namespace lethe::model
