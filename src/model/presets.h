// Named GPT-Neo architectures: the three released EleutherAI sizes plus `tiny`, a model small enough for
// tests and demos to build and run in seconds. Pure value code, no torch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/gpt_neo_config.h"

namespace lethe::model {

// The accepted names, in size order: gpt-neo-125m, gpt-neo-1.3B, gpt-neo-2.7B, tiny.
const std::vector<std::string>& preset_names();

// The architecture of a named preset. Throws InputError listing the valid names when `name` is unknown.
GptNeoConfig preset(std::string_view name);

// Trainable parameters of the model `cfg` describes, with the LM head tied to the token embedding as in
// the released checkpoints (GPT-Neo 125M = 125,198,592).
int64_t parameter_count(const GptNeoConfig& cfg);

}  // namespace lethe::model
