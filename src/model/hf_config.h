// `config.json` as Hugging Face transformers reads and writes it, for every family lethe runs, without
// Python.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "model/model_config.h"

namespace lethe::model {

// Parses and validates a transformers config.json; model_type picks the family. Throws InputError naming the
// file and field when model_type is missing or not "gpt_neo" / "llama", a required field is missing, a field
// has the wrong JSON type or an out-of-range value, or the fields contradict each other.
//
// gpt_neo: requires vocab_size, max_position_embeddings, hidden_size, num_layers, num_heads and
// attention_types (which must expand to num_layers entries); activation_function must be "gelu_new" and
// hidden_size divisible by num_heads. Optional fields take transformers' defaults (intermediate_size null ->
// 0, window_size 256, layer_norm_epsilon 1e-5, initializer_range 0.02, bos/eos 50256). The aliases
// num_hidden_layers / num_attention_heads are accepted, as transformers' attribute_map does.
//
// llama: requires vocab_size, hidden_size, intermediate_size, num_hidden_layers and num_attention_heads;
// num_key_value_heads (default: num_attention_heads) must divide num_attention_heads; hidden_act must be
// "silu"; head_dim (null = hidden_size / num_attention_heads) must then divide hidden_size evenly when not
// given. Rotary settings are read from transformers 5's `rope_parameters` or 4.x's `rope_theta` +
// `rope_scaling` (rope_type or type "default", "linear" with factor, or "llama3" with factor,
// low_freq_factor, high_freq_factor and original_max_position_embeddings, all required). eos_token_id may be
// an integer, a list or null; pad_token_id an integer or null.
ModelConfig read_hf_config(const std::filesystem::path& config_json);
// The same from config.json's text; `where` names it in errors.
ModelConfig parse_hf_config(const std::string& text, const std::string& where);

// Writes `config` atomically (see write_file_atomic) in the layout of the family's to_json_string: sorted
// keys, 2-space indent, "architectures" naming the HF class, "dtype" and "torch_dtype" = `dtype` (the
// tensors' dtype: "float32" or "bfloat16"), use_cache true. GPT-Neo: attention_types compressed back into
// runs, attention_layers expanded, intermediate_size null when 0, tie_word_embeddings true, dropouts 0.0
// (lethe trains without dropout, so the file describes the model as trained; classifier_dropout keeps
// transformers' 0.1). Llama: rope settings both as transformers 5 writes them (`rope_parameters`) and as
// 4.x reads them (`rope_theta`, `rope_scaling`). Throws std::invalid_argument if `config` is inconsistent.
void write_hf_config(const std::filesystem::path& config_json, const ModelConfig& config,
                     std::string_view dtype = "float32");
// What write_hf_config writes, as text.
std::string hf_config_text(const ModelConfig& config, std::string_view dtype = "float32");

}  // namespace lethe::model
