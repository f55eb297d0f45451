// How many rows the chunked LM head + loss (model/lm_loss.h) takes at a time: torch-free, so the memory plan
// (train/memory_plan.cpp) counts the same chunk the loss runs.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lethe::model {

// Rows per chunk so that one chunk's fp32 logits stay near 64 MB (2^24 values), at least 64 rows.
constexpr int64_t loss_chunk_rows(int64_t vocab) {
  return std::max<int64_t>(64, (int64_t{1} << 24) / std::max<int64_t>(1, vocab));
}

}  // namespace lethe::model
