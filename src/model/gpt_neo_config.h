// The architecture hyper-parameters of a GPT-Neo model, as Hugging Face's GPTNeoConfig names them.
// Pure value type: no torch, so config/validation code and tests can use it cheaply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::model {

enum class AttentionKind { kGlobal, kLocal };

struct GptNeoConfig {
  int64_t vocab_size = 50257;
  int64_t max_position_embeddings = 2048;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 0;  // 0 = 4 * hidden_size, as HF's None
  int64_t window_size = 256;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  std::string activation_function = "gelu_new";
  int64_t bos_token_id = 50256;
  int64_t eos_token_id = 50256;
  // One entry per layer, expanded from HF's compressed `attention_types` ([[["global","local"],6]]).
  std::vector<AttentionKind> attention_layers;

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t inner_dim() const { return intermediate_size > 0 ? intermediate_size : 4 * hidden_size; }
  bool operator==(const GptNeoConfig&) const = default;
};

// Alternating global/local layers, the layout every released GPT-Neo uses.
inline std::vector<AttentionKind> alternating_attention(int64_t num_layers) {
  std::vector<AttentionKind> kinds;
  for (int64_t i = 0; i < num_layers; ++i)
    kinds.push_back(i % 2 == 0 ? AttentionKind::kGlobal : AttentionKind::kLocal);
  return kinds;
}

}  // namespace lethe::model
