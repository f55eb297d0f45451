#include "cli/distributed.h"

#include <cstdlib>
#include <thread>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/signals.h"

namespace lethe::cli {

int run_on_world(Config& cfg, const std::function<int(comm::Communicator&)>& body) {
  // Several ranks on one machine share its cores: by default each takes an equal part.
  if (cfg.runtime.threads == 0 && comm::launched_by_mpi()) {
    // mpirun says how many ranks share this node; srun gives its tasks-per-node list ("2" or "2(x3)").
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = std::getenv("SLURM_STEP_TASKS_PER_NODE");
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
    return body(*world);
  } catch (const InputError& e) {
    return fail(e.what(), kExitBadInput);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), kExitRuntime);
  } catch (const std::exception& e) {
    return fail(e.what(), kExitRuntime);
  }
}

}  // namespace lethe::cli
