// Running a subcommand's body on the job's world (one process, or N ranks under mpirun/srun): per-rank
// thread count, stop-signal handlers, and failure handling — an error on any rank ends the whole job with
// that rank's message (exit 2 for bad input, 1 otherwise).
#pragma once

#include <functional>

#include "comm/communicator.h"
#include "core/config.h"

namespace lethe::cli {

// Applies cfg.runtime (threads default to cores / local ranks), installs the stop handlers, builds the
// world and runs body; returns its exit code.
int run_on_world(Config& cfg, const std::function<int(comm::Communicator&)>& body);

}  // namespace lethe::cli
