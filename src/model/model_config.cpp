#include "model/model_config.h"

namespace lethe::model {
namespace {

int64_t count(const GptNeoConfig& c) {
  const int64_t h = c.hidden_size, i = c.inner_dim();
  const int64_t layer_norm = 2 * h;                   // weight + bias
  const int64_t attention = 3 * h * h + (h * h + h);  // q, k, v without bias; out_proj with bias
  const int64_t mlp = (h * i + i) + (i * h + h);
  const int64_t per_layer = 2 * layer_norm + attention + mlp;
  // The LM head is tied to wte.
  return c.vocab_size * h + c.max_position_embeddings * h + c.num_layers * per_layer + layer_norm;
}

int64_t count(const LlamaConfig& c) {
  const int64_t h = c.hidden_size, i = c.intermediate_size, q = c.num_heads * c.head_dim(),
                kv = c.num_kv_heads * c.head_dim();
  const int64_t attention = h * q + 2 * h * kv + q * h + (c.attention_bias ? q + 2 * kv + h : 0);
  const int64_t mlp = 3 * h * i + (c.mlp_bias ? 2 * i + h : 0);
  const int64_t per_layer = attention + mlp + 2 * h;  // + two RMSNorm weights
  const int64_t embeddings = c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2);
  return embeddings + c.num_layers * per_layer + h;  // + the final norm
}

}  // namespace

int64_t ModelConfig::num_kv_heads() const {
  const LlamaConfig* l = llama();
  return l ? l->num_kv_heads : num_heads();
}

int64_t ModelConfig::inner_dim() const {
  const LlamaConfig* l = llama();
  return l ? l->intermediate_size : gpt_neo()->inner_dim();
}

std::vector<int64_t> ModelConfig::eos_token_ids() const {
  if (const LlamaConfig* l = llama()) return l->eos_token_ids;
  const int64_t eos = gpt_neo()->eos_token_id;
  return eos >= 0 ? std::vector<int64_t>{eos} : std::vector<int64_t>{};
}

int64_t ModelConfig::eos_token_id() const {
  const std::vector<int64_t> ids = eos_token_ids();
  return ids.empty() ? -1 : ids.front();
}

int64_t ModelConfig::matmul_parameter_count() const {
  if (const LlamaConfig* l = llama())
    return parameter_count() - (l->tie_word_embeddings ? 0 : l->vocab_size * l->hidden_size);
  const GptNeoConfig& g = *gpt_neo();
  return parameter_count() - g.max_position_embeddings * g.hidden_size;
}

int64_t ModelConfig::saved_values_per_token() const {
  const int64_t c = hidden_size(), i = inner_dim();
  if (!llama()) return 10 * c + 2 * i;
  return 6 * c + 2 * num_heads() * head_dim() + 2 * num_kv_heads() * head_dim() + 4 * i;
}

int64_t ModelConfig::parameter_count() const {
  return std::visit([](const auto& c) { return count(c); }, arch);
}

}  // namespace lethe::model
