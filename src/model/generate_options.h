// Generation settings as plain values (no torch), shared by the config and the generator.
#pragma once

#include <cstdint>
#include <vector>

namespace lethe::model {

// Hugging Face's beam-search `early_stopping`: kTrue stops once num_beams hypotheses are finished, kFalse
// stops when a heuristic says no better hypothesis is likely, kNever only when none can be better.
enum class EarlyStopping { kFalse, kTrue, kNever };

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  int64_t num_beams = 1;  // 1 = greedy
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::kFalse;
  std::vector<int64_t> eos_token_ids = {};  // any of them ends a row; empty = never stop on a token
  int64_t pad_token_id = -1;                // fills finished rows; -1 = the first EOS id (HF's fallback)
  bool operator==(const GenerateOptions&) const = default;
};

}  // namespace lethe::model
