// GPT-Neo `config.json` as Hugging Face transformers reads and writes it (GPTNeoConfig), without Python.
#pragma once

#include <filesystem>

#include "model/gpt_neo_config.h"

namespace lethe::model {

// Parses and validates a transformers GPT-Neo config.json. Throws InputError naming the file and field when:
// model_type is not "gpt_neo"; a required field (vocab_size, max_position_embeddings, hidden_size,
// num_layers, num_heads, attention_types) is missing; a field has the wrong JSON type or an out-of-range
// value; attention_types does not expand to exactly num_layers entries; activation_function is not
// "gelu_new"; hidden_size is not divisible by num_heads. Optional fields take transformers' defaults
// (intermediate_size null -> 0, window_size 256, layer_norm_epsilon 1e-5, initializer_range 0.02, bos/eos
// 50256). The aliases num_hidden_layers / num_attention_heads are accepted, as transformers' attribute_map
// does.
GptNeoConfig read_hf_config(const std::filesystem::path& config_json);

// Writes `config` atomically (see write_file_atomic) in the layout of transformers'
// GPTNeoConfig.to_json_string: sorted keys, 2-space indent, "architectures": ["GPTNeoForCausalLM"],
// attention_types compressed back into runs, attention_layers expanded, intermediate_size null when 0,
// "dtype" and "torch_dtype" "float32" (the tensors lethe saves), use_cache true, tie_word_embeddings true.
// The dropouts are written as 0.0: lethe trains without dropout, so the file describes the model as it was
// trained (classifier_dropout keeps transformers' 0.1 default; it only affects
// GPTNeoForSequenceClassification). Throws std::invalid_argument if `config` is inconsistent
// (attention_layers size != num_layers).
void write_hf_config(const std::filesystem::path& config_json, const GptNeoConfig& config);

}  // namespace lethe::model
