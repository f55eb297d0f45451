// The architecture hyper-parameters of a Llama model, as Hugging Face's LlamaConfig names them (the field
// names of config.json in comments where they differ). Pure value type: no torch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::model {

// config.json's `rope_scaling` (transformers 4.x) / `rope_parameters` (5.x): how rotary frequencies are
// stretched beyond the trained context. kNone is HF's "default" rope type.
enum class RopeType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeType type = RopeType::kNone;
  double factor = 1.0;            // linear: positions / factor; llama3: long wavelengths / factor
  double low_freq_factor = 1.0;   // llama3 only
  double high_freq_factor = 4.0;  // llama3 only
  int64_t original_max_position_embeddings = 8192;  // llama3 only
  bool operator==(const RopeScaling&) const = default;
};

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t max_position_embeddings = 2048;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_layers = 32;    // num_hidden_layers
  int64_t num_heads = 32;     // num_attention_heads
  int64_t num_kv_heads = 32;  // num_key_value_heads: fewer than num_heads = grouped-query attention
  int64_t head_size = 0;      // head_dim; 0 = hidden_size / num_heads (HF's None)
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q, k, v and o projections
  bool mlp_bias = false;        // gate, up and down projections
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids = {2};  // eos_token_id: an int or a list (Llama-3 Instruct stops on 3)
  int64_t pad_token_id = -1;  // -1 = none; else the embedding row that gets no gradient (nn.Embedding's)

  int64_t head_dim() const { return head_size > 0 ? head_size : hidden_size / num_heads; }
  bool operator==(const LlamaConfig&) const = default;
};

}  // namespace lethe::model
