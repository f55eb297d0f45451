#include "model/presets.h"

#include <fmt/format.h>

#include "core/error.h"

namespace lethe::model {
namespace {

// Values from the config.json of EleutherAI/gpt-neo-{125M,1.3B,2.7B} on the Hugging Face hub; everything
// not set here (vocab 50257, 2048 positions, window 256, eps 1e-5, init 0.02, bos/eos 50256, MLP width
// 4 * hidden) is already GptNeoConfig's default and shared by all three.
GptNeoConfig released(int64_t num_layers, int64_t hidden_size, int64_t num_heads) {
  GptNeoConfig cfg;
  cfg.num_layers = num_layers;
  cfg.hidden_size = hidden_size;
  cfg.num_heads = num_heads;
  cfg.attention_layers = alternating_attention(num_layers);
  return cfg;
}

GptNeoConfig tiny() {
  GptNeoConfig cfg = released(/*num_layers=*/4, /*hidden_size=*/64, /*num_heads=*/4);
  cfg.max_position_embeddings = 512;
  cfg.window_size = 32;  // smaller than typical test sequences so local attention is actually exercised
  return cfg;
}

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"gpt-neo-125m", "gpt-neo-1.3B", "gpt-neo-2.7B", "tiny"};
  return names;
}

GptNeoConfig preset(std::string_view name) {
  if (name == "gpt-neo-125m") return released(12, 768, 12);
  if (name == "gpt-neo-1.3B") return released(24, 2048, 16);
  if (name == "gpt-neo-2.7B") return released(32, 2560, 20);
  if (name == "tiny") return tiny();
  throw_input("unknown model preset '{}'; valid presets: {}", name, fmt::join(preset_names(), ", "));
}

int64_t parameter_count(const GptNeoConfig& cfg) {
  const int64_t h = cfg.hidden_size;
  const int64_t layer_norm = 2 * h;                   // weight + bias
  const int64_t attention = 3 * h * h + (h * h + h);  // q, k, v without bias; out_proj with bias
  const int64_t mlp = (h * cfg.inner_dim() + cfg.inner_dim()) + (cfg.inner_dim() * h + h);
  const int64_t per_layer = 2 * layer_norm + attention + mlp;
  return cfg.vocab_size * h + cfg.max_position_embeddings * h + cfg.num_layers * per_layer + layer_norm;
}

}  // namespace lethe::model
