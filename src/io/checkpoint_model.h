// The model weights of a lethe checkpoint (meta.h5 /architecture + /model/<HF name>, fp32), for evaluating
// a run's progress without exporting an HF folder first. Optimizer state is not read.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <torch/types.h>

#include "model/causal_lm.h"

namespace lethe::io {

// A complete checkpoint folder (step-…/ with COMPLETE), the checkpoints root of a run (uses `latest`), or a
// run folder holding checkpoints/: the checkpoint folder it names, or nullopt when `path` is none of those
// (e.g. an HF folder).
std::optional<std::filesystem::path> checkpoint_folder(const std::filesystem::path& path);

// InputError naming the file and dataset for a missing, incomplete or corrupt checkpoint.
model::CausalLm load_checkpoint_model(const std::filesystem::path& dir,
                                      torch::ScalarType dtype = torch::kFloat);

// The resolved config YAML stored with the checkpoint.
std::string checkpoint_config_yaml(const std::filesystem::path& dir);

// The folder holding the run's tokenizer files, from that stored config: tokenizer.path, else model.path;
// empty when the run named neither (a model initialised from a preset).
std::filesystem::path checkpoint_tokenizer_dir(const std::filesystem::path& dir);

}  // namespace lethe::io
