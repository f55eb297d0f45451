// `lethe unlearn`: ICU's epoch loop on the distributed engine (spec icu.md §3-§5).
//
//   validate (epoch 0: sets the flags; its stop decision is ignored, as in the reference)
//   repeat: one epoch of steps over all pairs (a fresh seeded permutation, batch_size pairs per step split
//           across ranks, inactive pairs dropped from all terms) → validate → re-judge every pair → stop?
//
// Flags, epoch counters and the sampler position live in the checkpoint, so a stopped run resumes exactly.
#pragma once

#include <cstdint>
#include <string>

#include "comm/world.h"
#include "config/config.h"
#include "eval/forget_scores.h"
#include "text/tokenizer.h"

namespace lethe::train {

struct UnlearnOutcome {
  bool stopped_by_signal = false;
  int64_t epochs = 0;  // training epochs completed
  std::string stop_reason;
  double el = 0, ma = 0;
};

// The engine's buckets go over comms.device, every control collective over comms.host; the model (and the
// frozen reference) live on comms.where.
UnlearnOutcome run_unlearning(const Config& cfg, const comm::Comms& comms, const text::Tokenizer& tokenizer,
                              const eval::TextScorer& bert = {});

}  // namespace lethe::train
