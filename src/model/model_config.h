// The architecture of any causal LM lethe runs: one family's config (GPT-Neo or Llama), plus the dimensions
// every consumer asks of a model whatever its family (vocabulary, width, depth, context, stop tokens).
// Family-specific fields stay in the family's struct; code outside src/model reads only the accessors here.
// Pure value type: no torch.
#pragma once

#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "model/gpt_neo_config.h"
#include "model/llama_config.h"

namespace lethe::model {

enum class Family { kGptNeo, kLlama };

struct ModelConfig {
  std::variant<GptNeoConfig, LlamaConfig> arch;

  ModelConfig() = default;
  ModelConfig(GptNeoConfig c) : arch(std::move(c)) {}  // NOLINT: implicit, a family config is a model config
  ModelConfig(LlamaConfig c) : arch(std::move(c)) {}   // NOLINT

  Family family() const { return arch.index() == 0 ? Family::kGptNeo : Family::kLlama; }
  // HF's model_type: "gpt_neo" | "llama".
  std::string_view model_type() const { return family() == Family::kGptNeo ? "gpt_neo" : "llama"; }
  const GptNeoConfig* gpt_neo() const { return std::get_if<GptNeoConfig>(&arch); }
  const LlamaConfig* llama() const { return std::get_if<LlamaConfig>(&arch); }

  int64_t vocab_size() const {
    return std::visit([](const auto& c) { return c.vocab_size; }, arch);
  }
  int64_t hidden_size() const {
    return std::visit([](const auto& c) { return c.hidden_size; }, arch);
  }
  int64_t num_layers() const {
    return std::visit([](const auto& c) { return c.num_layers; }, arch);
  }
  int64_t num_heads() const {
    return std::visit([](const auto& c) { return c.num_heads; }, arch);
  }
  int64_t head_dim() const {
    return std::visit([](const auto& c) { return c.head_dim(); }, arch);
  }
  // Key/value heads: num_heads except under grouped-query attention.
  int64_t num_kv_heads() const;
  // The MLP's inner width (GPT-Neo's c_fc, Llama's gate and up projections).
  int64_t inner_dim() const;
  // The longest sequence: GPT-Neo's learned position table; Llama's trained context (rotary positions
  // have no table, but nothing past it was trained).
  int64_t max_position_embeddings() const {
    return std::visit([](const auto& c) { return c.max_position_embeddings; }, arch);
  }
  int64_t bos_token_id() const {
    return std::visit([](const auto& c) { return c.bos_token_id; }, arch);
  }
  // Every token that ends a sequence; the first is the one lethe appends or pads with. Empty = none.
  std::vector<int64_t> eos_token_ids() const;
  int64_t eos_token_id() const;  // the first of eos_token_ids(), -1 when there is none
  // Parameters that take part in a matrix product per token (the FLOP count of a step is 6 of them per
  // token): all but the position table (GPT-Neo) and an untied input embedding (Llama), which are lookups.
  int64_t matmul_parameter_count() const;
  // Values per token and layer that a block keeps for backward (the memory plan's activation term):
  // GPT-Neo 10·C + 2·I (norms, residuals, q k v, attention output; c_fc and GELU outputs); Llama
  // 6·C + 2·H·D + 2·G·D + 4·I (q and the attention output, k and v; gate, up, SiLU and product).
  int64_t saved_values_per_token() const;
  // Trainable parameters (tied heads counted once): GPT-Neo 125M = 125,198,592; Llama-2-7B = 6,738,415,616.
  int64_t parameter_count() const;
};

}  // namespace lethe::model
