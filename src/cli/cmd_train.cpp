// `lethe train --config F [--resume auto|PATH] [--set k=v]...`: fine-tuning with the LM loss on one process
// or under `mpirun -np N` / `srun`, optimizer state sharded ZeRO-style (train/trainer.h does the work).
// An error on any rank ends the whole job with that rank's message (exit 2 for bad input, 1 otherwise);
// SIGTERM/SIGUSR1 save a checkpoint and exit 143.
#include <cstdlib>
#include <thread>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "core/signals.h"
#include "train/trainer.h"

namespace lethe::cli {

int run_train(int argc, char** argv) {
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
  // Several ranks on one machine share its cores: by default each takes an equal part.
  if (cfg.runtime.threads == 0 && comm::launched_by_mpi()) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int n = local ? std::max(1, std::atoi(local)) : 1;
    cfg.runtime.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n);
  }
  apply_runtime(cfg.runtime);
  install_stop_handlers();

  std::unique_ptr<comm::Communicator> world = comm::make_world();
  if (world->rank() != 0) spdlog::set_level(spdlog::level::warn);
  auto fail = [&](const std::string& what, int code) -> int {
    if (world->size() == 1) {
      if (code == kExitBadInput) throw InputError(what);
      throw std::runtime_error(what);
    }
    world->abort(fmt::format("error (rank {} of {}): {}", world->rank(), world->size(), what), code);
    std::abort();  // not reached: abort() ends every rank
  };
  try {
    const train::TrainOutcome out = train::run_training(cfg, *world);
    return out.stopped ? kExitStopped : kExitOk;
  } catch (const InputError& e) {
    return fail(e.what(), kExitBadInput);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), kExitRuntime);
  } catch (const std::exception& e) {
    return fail(e.what(), kExitRuntime);
  }
}

}  // namespace lethe::cli
