// The model section's logic: presets, cross-field rules and the architecture it resolves to.
#include "config/config.h"

#include "core/error.h"

namespace lethe {
namespace {

// The shortest prefix that, repeated, yields `layers` (alternating -> [global, local]).
std::vector<model::AttentionKind> shortest_pattern(const std::vector<model::AttentionKind>& layers) {
  for (size_t period = 1; period < layers.size(); ++period) {
    bool repeats = true;
    for (size_t i = period; i < layers.size() && repeats; ++i) repeats = layers[i] == layers[i - period];
    if (repeats) return {layers.begin(), layers.begin() + static_cast<std::ptrdiff_t>(period)};
  }
  return layers;
}

}  // namespace

void apply_preset(ModelSection& m, const std::string& name) {
  if (name.empty()) return;
  const model::ModelConfig preset = model::preset(name);
  m.family = preset.family();
  if (const model::LlamaConfig* llama = preset.llama()) {
    m.llama.arch = *llama;
    return;
  }
  m.gpt_neo.arch = *preset.gpt_neo();
  m.gpt_neo.attention_pattern = shortest_pattern(m.gpt_neo.arch.attention_layers);
  m.gpt_neo.arch.attention_layers.clear();  // the pattern is the section's spelling of them
}

void GptNeoSection::check_arch() const {
  LETHE_CHECK_INPUT(
      arch.hidden_size % arch.num_heads == 0,
      "invalid config: model.gpt_neo.hidden_size ({}) must be divisible by model.gpt_neo.num_heads ({})",
      arch.hidden_size, arch.num_heads);
  LETHE_CHECK_INPUT(
      arch.bos_token_id < arch.vocab_size && arch.eos_token_id < arch.vocab_size,
      "invalid config: model.gpt_neo.bos_token_id ({}) and model.gpt_neo.eos_token_id ({}) must be < "
      "model.gpt_neo.vocab_size ({})",
      arch.bos_token_id, arch.eos_token_id, arch.vocab_size);
}

model::GptNeoConfig GptNeoSection::config() const {
  model::GptNeoConfig a = arch;
  a.attention_layers.clear();
  for (int64_t i = 0; i < a.num_layers && !attention_pattern.empty(); ++i)
    a.attention_layers.push_back(attention_pattern[static_cast<size_t>(i) % attention_pattern.size()]);
  return a;
}

void LlamaSection::check_arch() const {
  const model::LlamaConfig& a = arch;
  LETHE_CHECK_INPUT(
      a.num_heads % a.num_kv_heads == 0,
      "invalid config: model.llama.num_heads ({}) must be a multiple of model.llama.num_kv_heads ({})",
      a.num_heads, a.num_kv_heads);
  LETHE_CHECK_INPUT(
      a.head_size > 0 || a.hidden_size % a.num_heads == 0,
      "invalid config: model.llama.hidden_size ({}) must be divisible by model.llama.num_heads ({}) "
      "when model.llama.head_dim is 0",
      a.hidden_size, a.num_heads);
  LETHE_CHECK_INPUT(a.head_dim() % 2 == 0,
                    "invalid config: the Llama head width ({}) must be even for rotary embeddings",
                    a.head_dim());
  bool ids_ok = a.bos_token_id < a.vocab_size && a.pad_token_id < a.vocab_size;
  for (const int64_t e : a.eos_token_ids) ids_ok = ids_ok && e >= 0 && e < a.vocab_size;
  LETHE_CHECK_INPUT(
      ids_ok,
      "invalid config: model.llama.bos_token_id, eos_token_ids and pad_token_id must be token ids "
      "< model.llama.vocab_size ({})",
      a.vocab_size);
}

void ModelSection::check() const {
  if (family == model::Family::kGptNeo) {
    gpt_neo.check_arch();
  } else {
    llama.check_arch();
  }
}

model::ModelConfig architecture(const ModelSection& m) {
  if (m.family == model::Family::kLlama) return m.llama.arch;
  return m.gpt_neo.config();
}

}  // namespace lethe

namespace lethe {

void TrainSection::check() const {
  LETHE_CHECK_INPUT(micro_batch_size <= global_batch_size,
                    "invalid config: train.micro_batch_size ({}) is larger than train.global_batch_size ({})",
                    micro_batch_size, global_batch_size);
}

}  // namespace lethe
