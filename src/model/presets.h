// Named architectures: the three released EleutherAI GPT-Neo sizes, the Llama checkpoints the unlearning
// literature runs on (Llama-3.2 1B and 3B, Llama-2 7B), and `tiny` / `llama-tiny`, models small enough for
// tests and demos to build and run in seconds. Pure value code, no torch.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"

namespace lethe::model {

// The accepted names, GPT-Neo first, each family in size order.
const std::vector<std::string>& preset_names();

// The architecture of a named preset. Throws InputError listing the valid names when `name` is unknown.
ModelConfig preset(std::string_view name);

}  // namespace lethe::model
