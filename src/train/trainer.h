// The one training loop every job runs (architecture.md §1): data, model, ZeRO engine, schedule,
// checkpoints, metrics, signals and resume. `lethe train` fine-tunes with the LM loss; unlearning methods
// will plug their objective into the same loop.
//
// Per optimizer step, on every rank:
//   global batch (sampler, independent of world size) → this rank's block → accumulation micro-batches
//   → forward, summed next-token CE / tokens in the global batch → engine.backward → engine.step(lr)
// then metrics (rank 0), the stop-signal agreement, and a checkpoint when due.
#pragma once

#include <cstdint>

#include "comm/world.h"
#include "config/config.h"

namespace lethe::train {

struct TrainOutcome {
  bool stopped = false;  // a stop signal ended the run early (after a checkpoint)
  int64_t steps_done = 0;
  double last_loss = 0;
};

// Runs cfg's training on the job's communicators (the engine's buckets on comms.device, everything else on
// comms.host) with the model on comms.where. InputError for bad input (data, resume target, batch geometry).
TrainOutcome run_training(const Config& cfg, const comm::Comms& comms);

}  // namespace lethe::train
