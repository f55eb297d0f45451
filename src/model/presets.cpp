#include "model/presets.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

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

// meta-llama/Llama-3.2-{1B,3B}(-Instruct) config.json: 128256 tokens, rope_theta 500000 with llama3 scaling
// (factor 32, low 1, high 4, original 8192), tied head, eos = the Instruct models' three stop tokens.
LlamaConfig llama32(int64_t num_layers, int64_t hidden_size, int64_t num_heads, int64_t head_dim) {
  LlamaConfig c;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.hidden_size = hidden_size;
  c.intermediate_size = 8192;
  c.num_layers = num_layers;
  c.num_heads = num_heads;
  c.num_kv_heads = 8;
  c.head_size = head_dim;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling = {.type = RopeType::kLlama3,
                    .factor = 32.0,
                    .low_freq_factor = 1.0,
                    .high_freq_factor = 4.0,
                    .original_max_position_embeddings = 8192};
  c.tie_word_embeddings = true;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001, 128008, 128009};
  return c;
}

// meta-llama/Llama-2-7b(-chat)-hf config.json.
LlamaConfig llama2_7b() {
  LlamaConfig
      c;  // vocab 32000, hidden 4096, MLP 11008, 32 layers and heads, rope_theta 1e4, untied, bos 1, eos 2
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  return c;
}

// A Llama small enough for tests and demos, on the GPT-2 vocabulary like `tiny`, with grouped-query
// attention (4 query heads on 2 key/value heads) so the GQA path is what the demo exercises.
LlamaConfig llama_tiny() {
  LlamaConfig c;
  c.vocab_size = 50257;
  c.max_position_embeddings = 512;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.rms_norm_eps = 1e-5;
  c.bos_token_id = 50256;
  c.eos_token_ids = {50256};
  return c;
}

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"gpt-neo-125m", "gpt-neo-1.3B", "gpt-neo-2.7B",
                                                 "tiny",         "llama-3.2-1b", "llama-3.2-3b",
                                                 "llama-2-7b",   "llama-tiny"};
  return names;
}

ModelConfig preset(std::string_view name) {
  if (name == "gpt-neo-125m") return released(12, 768, 12);
  if (name == "gpt-neo-1.3B") return released(24, 2048, 16);
  if (name == "gpt-neo-2.7B") return released(32, 2560, 20);
  if (name == "tiny") return tiny();
  if (name == "llama-3.2-1b") return llama32(16, 2048, 32, 64);
  if (name == "llama-3.2-3b") return llama32(28, 3072, 24, 128);
  if (name == "llama-2-7b") return llama2_7b();
  if (name == "llama-tiny") return llama_tiny();
  throw_input("unknown model preset '{}'; valid presets: {}", name, fmt::join(preset_names(), ", "));
}

}  // namespace lethe::model
