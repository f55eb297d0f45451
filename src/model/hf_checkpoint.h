// Hugging Face checkpoint folders ⇄ GptNeo modules: config.json + model.safetensors (or a sharded index).
// The pure-C++ file formats live in safetensors.h / hf_config.h; this file is the libtorch glue.
#pragma once

#include <filesystem>

#include <torch/types.h>

#include "model/gpt_neo.h"

namespace lethe::model {

// Builds the model described by `dir`/config.json and copies every tensor in, converting from the file's
// dtype (F32/F16/BF16) to `dtype`. Every parameter must be present with the configured shape; the tied
// `lm_head.weight` and HF's old non-persistent attention buffers are accepted and ignored; any other tensor
// is an error (a different architecture). All failures are InputError naming the file and tensor.
GptNeo load_hf_model(const std::filesystem::path& dir, torch::ScalarType dtype = torch::kFloat,
                     torch::Device device = torch::kCPU);

// Writes config.json and model.safetensors (fp32, tensors named as HF names them, no lm_head: it is tied)
// into `dir`, creating it. Each file is written atomically; `GPTNeoForCausalLM.from_pretrained(dir)` loads
// the result.
void save_hf_model(GptNeo& model, const std::filesystem::path& dir);

// Copies the tokenizer files found in `from` (vocab.json + merges.txt, tokenizer.json, or the OpenAI names
// encoder.json + vocab.bpe, written under the HF names) into `to`. Returns false when `from` has none.
bool copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace lethe::model
