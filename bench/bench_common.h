// What the C++ benchmarks share: `--name value` flags and the randomly initialised model they time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <variant>

#include <ATen/Parallel.h>

#include "core/memory.h"
#include "model/causal_lm.h"
#include "model/hf_config.h"
#include "model/presets.h"

namespace lethe::bench {

using Flag = std::variant<int64_t*, std::string*>;

// Fills the targets from `--name value` pairs; false (after printing why) on an unknown or malformed flag.
inline bool parse_flags(int argc, char** argv, const std::map<std::string, Flag>& flags) {
  for (int i = 1; i < argc; i += 2) {
    const auto it = flags.find(argv[i]);
    if (it == flags.end() || i + 1 >= argc) {
      std::cerr << "unknown option or missing value: " << argv[i] << "\n";
      return false;
    }
    try {
      if (auto* n = std::get_if<int64_t*>(&it->second))
        **n = std::stoll(argv[i + 1]);
      else
        *std::get<std::string*>(it->second) = argv[i + 1];
    } catch (const std::exception&) {
      std::cerr << argv[i] << " expects an integer, got " << argv[i + 1] << "\n";
      return false;
    }
  }
  return true;
}

// Process set-up as `lethe` does it, then the model with transformers' init (seed 1234): `preset` names a
// preset, or a folder whose config.json describes the architecture (any family; its weights are not read).
inline model::CausalLm random_model(const std::string& preset, int64_t threads) {
  retain_freed_memory();
  at::set_num_threads(static_cast<int>(threads));
  const bool folder = std::filesystem::is_directory(preset);
  model::CausalLm m = model::make_causal_lm(
      folder ? model::read_hf_config(std::filesystem::path(preset) / "config.json") : model::preset(preset));
  m->reset_parameters(1234);
  return m;
}

}  // namespace lethe::bench
