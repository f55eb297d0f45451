// The model section's logic: presets, cross-field rules and the GptNeoConfig it resolves to.
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
  // The section's architecture keys are GPT-Neo's; a Llama preset has no place in them yet.
  LETHE_CHECK_INPUT(
      preset.gpt_neo() != nullptr,
      "model.preset '{}' is a Llama architecture, and the config's architecture keys describe "
      "GPT-Neo only so far: give the Llama as model.path (a Hugging Face folder; `lethe init-model "
      "--preset {}` makes a randomly initialised one)",
      name, name);
  const model::GptNeoConfig& p = *preset.gpt_neo();
  m.vocab_size = p.vocab_size;
  m.max_position_embeddings = p.max_position_embeddings;
  m.hidden_size = p.hidden_size;
  m.num_layers = p.num_layers;
  m.num_heads = p.num_heads;
  m.intermediate_size = p.intermediate_size;
  m.window_size = p.window_size;
  m.layer_norm_epsilon = p.layer_norm_epsilon;
  m.initializer_range = p.initializer_range;
  m.bos_token_id = p.bos_token_id;
  m.eos_token_id = p.eos_token_id;
  m.attention_pattern = shortest_pattern(p.attention_layers);
}

void ModelSection::check() const {
  LETHE_CHECK_INPUT(hidden_size % num_heads == 0,
                    "invalid config: model.hidden_size ({}) must be divisible by model.num_heads ({})",
                    hidden_size, num_heads);
  LETHE_CHECK_INPUT(bos_token_id < vocab_size && eos_token_id < vocab_size,
                    "invalid config: model.bos_token_id ({}) and model.eos_token_id ({}) must be < "
                    "model.vocab_size ({})",
                    bos_token_id, eos_token_id, vocab_size);
}

model::ModelConfig architecture(const ModelSection& m) {
  model::GptNeoConfig a;
  a.vocab_size = m.vocab_size;
  a.max_position_embeddings = m.max_position_embeddings;
  a.hidden_size = m.hidden_size;
  a.num_layers = m.num_layers;
  a.num_heads = m.num_heads;
  a.intermediate_size = m.intermediate_size;
  a.window_size = m.window_size;
  a.layer_norm_epsilon = m.layer_norm_epsilon;
  a.initializer_range = m.initializer_range;
  a.bos_token_id = m.bos_token_id;
  a.eos_token_id = m.eos_token_id;
  for (int64_t i = 0; i < m.num_layers && !m.attention_pattern.empty(); ++i)
    a.attention_layers.push_back(m.attention_pattern[static_cast<size_t>(i) % m.attention_pattern.size()]);
  return a;
}

}  // namespace lethe

namespace lethe {

void TrainSection::check() const {
  LETHE_CHECK_INPUT(micro_batch_size <= global_batch_size,
                    "invalid config: train.micro_batch_size ({}) is larger than train.global_batch_size ({})",
                    micro_batch_size, global_batch_size);
  LETHE_CHECK_INPUT(warmup_steps <= steps, "invalid config: train.warmup_steps ({}) exceeds train.steps ({})",
                    warmup_steps, steps);
}

}  // namespace lethe
