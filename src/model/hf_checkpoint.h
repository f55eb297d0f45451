// Hugging Face checkpoint folders ⇄ causal LM modules of any family: config.json + model.safetensors (or a
// sharded index).
// The pure-C++ file formats live in safetensors.h / hf_config.h; this file is the libtorch glue.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/types.h>

#include "model/causal_lm.h"

namespace lethe::model {

// Builds the model described by `dir`/config.json and copies every tensor in, converting from the file's
// dtype (F32/F16/BF16) to `dtype`. Every parameter must be present with the configured shape; what the
// family calls ignorable (a tied `lm_head.weight`, buffers old transformers saved) is skipped; any other
// tensor is an error (a different architecture). All failures are InputError naming the file and tensor.
CausalLm load_hf_model(const std::filesystem::path& dir, torch::ScalarType dtype = torch::kFloat,
                       torch::Device device = torch::kCPU);

struct SaveOptions {
  torch::ScalarType dtype = torch::kFloat;    // of the tensors written: kFloat, kBFloat16 or kHalf
  int64_t max_shard_bytes = 0;                // > 0: shards of at most this size plus an index; 0: one file
  std::filesystem::path tokenizer_from = {};  // copy its tokenizer files (copy_tokenizer_files) when set
};

// Writes `dir` as a Hugging Face folder: config.json ("dtype" saying the tensors' dtype) and either
// model.safetensors or model-0000i-of-0000n.safetensors + model.safetensors.index.json (transformers' names
// and index layout), tensors named as HF names them (a tied head is not written), plus the tokenizer files.
// The files are written beside `dir` and moved in, after the previous weight files are removed: `dir` never
// holds a mix of old and new weights, and a failure while writing leaves it as it was. Other files in `dir`
// are kept. `AutoModelForCausalLM.from_pretrained(dir)` loads the result.
void save_hf_model(CausalLm& model, const std::filesystem::path& dir, const SaveOptions& options = {});

// "2GB", "500MB", "40KB", "4GiB", "123B" → bytes, as transformers' convert_file_size_to_int (GB = 10⁹,
// GiB = 2³⁰). InputError for anything else.
int64_t parse_shard_size(const std::string& text);

// Copies the tokenizer files found in `from` (vocab.json + merges.txt, tokenizer.json with
// tokenizer_config.json and special_tokens_map.json, tokenizer.model, or the OpenAI names encoder.json +
// vocab.bpe, written under the HF names) into `to`. Returns false when `from` has none.
bool copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace lethe::model
