// Stop requests from the outside (Slurm's pre-timeout signal, scancel, kill): SIGTERM and SIGUSR1 only set
// a flag (async-signal-safe, SEI CERT SIG30-C); the training loop checks it at step boundaries, where the
// ranks agree, save a checkpoint and exit with 143.
#pragma once

namespace lethe {

void install_stop_handlers();
// The signal that asked to stop, 0 if none.
int stop_signal();

}  // namespace lethe
