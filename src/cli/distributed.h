// Running a subcommand's body on the job's world (one process, or N ranks under mpirun/srun): per-rank
// thread count and failure handling — an error on any rank ends the whole job with
// that rank's message (exit 2 for bad input, 1 otherwise).
#pragma once

#include <functional>

#include "comm/world.h"
#include "config/config.h"

namespace lethe::cli {

// Applies cfg.runtime (threads default to the CPUs this rank may use, below), builds the world (host
// communicator, this rank's device per runtime.device, NCCL on GPUs: comm/world.h) and runs body;
// returns its exit code. Commands that checkpoint on a stop signal (train, unlearn) install the handlers
// themselves, first thing, so that a signal during start-up is not lost; the others keep the default action.
int run_on_world(Config& cfg, const std::function<int(const comm::World&)>& body);

}  // namespace lethe::cli
