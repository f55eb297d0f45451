// `lethe prep`: choose the forget targets, embed every row, find each target's nearest neighbours among the
// non-target rows, and write the pairs (prep/pairs.h).
#pragma once

#include <filesystem>

#include <torch/types.h>

#include "config/config.h"

namespace lethe::prep {

struct PrepOutcome {
  std::filesystem::path file;
  int64_t targets = 0, pool = 0, distinct_neighbours = 0;
};

// InputError for bad sources, csv files, ids or sizes.
PrepOutcome run_prep(const Config& cfg, torch::Device device = torch::kCPU);

}  // namespace lethe::prep
