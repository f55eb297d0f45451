// The causal language model interface every consumer uses: the engine, generation, scoring, EL/MA, the
// utility suite and the unlearning loop hold a CausalLm and never know which family is behind it. Each
// family (model/gpt_neo.h, model/llama.h) is single-device code in one file; parallelism is applied from
// outside (architecture.md §1). Module and parameter names equal the family's HF tensor names, so checkpoint
// I/O is a name-for-name copy.
//
// Dimension letters: B batch, T query length, P past (cached) length, K = P + T key length, C hidden size,
// H heads, G key/value heads (H under plain multi-head attention), D head size, V vocabulary.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/model_config.h"

namespace lethe::model {

// Keys and values of every layer for the tokens seen so far: keys[l], values[l] are [B, G, length, D], or,
// preallocated, [B, G, capacity, D] of which the first `length` positions are filled.
struct KvCache {
  std::vector<torch::Tensor> keys = {}, values = {};
  int64_t length = 0;
  // > 0: the first append of a layer allocates `capacity` positions and later ones write in place, instead
  // of concatenating (a copy of the whole cache per token). generate() preallocates on GPUs; on the CPU it
  // measured slower (SDPA on strided views of the larger buffer costs more than the copies save).
  int64_t capacity = 0;

  // Appends k, v [B, G, T, D] to `layer`; returns all cached keys and values, [B, G, length + T, D].
  // The model's forward advances `length` once every layer has appended.
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
  torch::Tensor last_hidden_state;           // [B, T, C] after the final norm
  std::vector<torch::Tensor> hidden_states;  // input of each block, then the output after the final norm
};

class CausalLmImpl : public torch::nn::Module {
 public:
  // input_ids: [B, T] int64. See ForwardArgs for the rest.
  virtual ForwardOutput forward(const torch::Tensor& input_ids, const ForwardArgs& args = {}) = 0;
  // The LM head alone: hidden [..., C] → logits [..., V] in the model's dtype. Lets callers that need only
  // some positions (the last one when generating, one row at a time when scoring) skip the rest.
  virtual torch::Tensor lm_head(const torch::Tensor& hidden) const = 0;
  // The head's weight [V, C] (tied: the token embedding), for losses that apply the head in chunks
  // (model/lm_loss.h).
  virtual const torch::Tensor& head_weight() const = 0;
  // HF's _init_weights for the family, drawn on the CPU in fp32 from `seed`: the same weights whatever the
  // device and dtype.
  virtual void reset_parameters(uint64_t seed) = 0;
  // Checkpoint tensors that are not parameters and may be skipped when loading (a tied head saved anyway,
  // buffers older transformers saved).
  virtual bool ignorable_tensor(const std::string& name) const = 0;

  // Activation checkpointing: while gradients are recorded (and no KV cache is used), each block keeps only
  // its input [B, T, C]; backward runs the block again to get what it needs. The same numbers, the memory
  // of one block's activations instead of every block's, one more block forward per backward.
  void set_activation_checkpointing(bool on) { checkpoint_blocks_ = on; }

  const ModelConfig& config() const { return config_; }

 protected:
  explicit CausalLmImpl(ModelConfig config) : config_(std::move(config)) {}

  // HF's _init_weights for both families: biases 0, norm weights (`is_norm(name)`) 1, everything else
  // N(0, initializer_range) drawn on the CPU in fp32 from `seed`, so a seed gives the same weights whatever
  // the device and dtype.
  void init_weights(uint64_t seed, const std::function<bool(const std::string&)>& is_norm);
  // Sizes an empty cache for every layer; returns the cached length P (0 without a cache).
  int64_t start_forward(KvCache* cache) const;
  // After the last block and the final norm (x: [B, T, C]): advances the cache by T, records the last
  // hidden state, applies the head when asked.
  ForwardOutput finish_forward(const torch::Tensor& x, const ForwardArgs& args, int64_t t, ForwardOutput out);

  ModelConfig config_;
  bool checkpoint_blocks_ = false;
};

// A shared handle, like the TORCH_MODULE holders: `model->forward(...)`, copies share the module.
class CausalLm : public torch::nn::ModuleHolder<CausalLmImpl> {
 public:
  CausalLm(std::nullptr_t) : ModuleHolder(nullptr) {}  // NOLINT: implicit, as TORCH_MODULE's holders
  CausalLm(std::shared_ptr<CausalLmImpl> impl) : ModuleHolder(std::move(impl)) {}  // NOLINT
};

// The family `config` names, built piece by piece on `device` in `dtype` (the host never holds the whole
// model in fp32), with PyTorch's default initialisation; call reset_parameters for HF's.
CausalLm make_causal_lm(const ModelConfig& config, torch::Device device = torch::kCPU,
                        torch::ScalarType dtype = torch::kFloat);

// Position ids as HF generation derives them under left padding: cumsum(mask) - 1, padding positions set to
// 0. mask: [B, K] → [B, K] int64.
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

// Mean next-token cross-entropy over labels != -100 (HF ForCausalLMLoss: logits upcast to fp32, labels
// shifted). logits: [B, T, V], labels: [B, T] int64.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// Per-token log-probability of each next token: [B, T-1] fp32; entry t scores ids[:, t+1] given ids[:, :t+1].
torch::Tensor next_token_logprobs(const torch::Tensor& logits, const torch::Tensor& input_ids);

}  // namespace lethe::model
