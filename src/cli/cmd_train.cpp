// `lethe train --config F [--resume auto|PATH] [--set k=v]...`: fine-tuning with the LM loss on one process
// or under `mpirun -np N` / `srun`, optimizer state sharded ZeRO-style (train/trainer.h does the work).
// An error on any rank ends the whole job with that rank's message (exit 2 for bad input, 1 otherwise);
// SIGTERM/SIGUSR1 save a checkpoint and exit 143.
#include "cli/common.h"
#include "cli/distributed.h"
#include "core/error.h"
#include "core/signals.h"
#include "train/trainer.h"

namespace lethe::cli {

int run_train(int argc, char** argv) {
  install_stop_handlers();  // first: a stop signal during start-up is acted on at the first step boundary
  ConfigOptions co;
  std::string resume;
  po::options_description desc;
  desc.add_options()(
      "resume", po::value(&resume),
      "auto = newest complete checkpoint of the run (fresh start if none), or a checkpoint folder; "
      "overrides checkpoint.resume");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc, "lethe train --config F [--resume auto|PATH] [--set k=v]...",
          "Trains the configured GPT-Neo with the next-token loss. Run alone or as N ranks: "
          "mpirun -np N lethe train --config F. Writes <run.output_dir>/<run.name>/: config.resolved.yaml, "
          "metrics.h5, checkpoints/, final/ (HF folder). Exit 143 after a stop signal (checkpoint saved)."))
    return 0;
  Config cfg = co.load();
  if (!resume.empty()) cfg.checkpoint.resume = resume;
  return run_on_world(cfg, [&](const comm::World& world) {
    const train::TrainOutcome out = train::run_training(cfg, world.comms());
    return out.stopped ? kExitStopped : kExitOk;
  });
}

}  // namespace lethe::cli
