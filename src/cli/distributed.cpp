#include "cli/distributed.h"

#include <sched.h>

#include <cstdlib>
#include <string>
#include <thread>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"

namespace lethe::cli {

int run_on_world(Config& cfg, const std::function<int(const comm::World&)>& body) {
  // Several ranks on one machine share its cores. Slurm says how many CPUs a task has; otherwise the CPUs
  // this process may run on (its affinity mask: a cgroup or a binding narrows it) are split among the ranks
  // of the node (mpirun's local size, or srun's tasks per node, "2" or "2(x3)").
  if (cfg.runtime.threads == 0 && comm::launched_by_mpi()) {
    int n = 1;
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_STEP_TASKS_PER_NODE"})
      if (const char* v = std::getenv(var)) {
        n = std::max(1, std::atoi(v));
        break;
      }
    cpu_set_t set;
    const int cpus = sched_getaffinity(0, sizeof(set), &set) == 0
                         ? CPU_COUNT(&set)
                         : static_cast<int>(std::thread::hardware_concurrency());
    // lethe-run with GPUs binds each rank to its own cores (--map-by ppr:R:node:PE=C) and says so with
    // LETHE_BIND_GPU=1: that mask is this rank's alone, not to be divided again.
    const char* bind = std::getenv("LETHE_BIND_GPU");
    const bool bound = bind && std::string(bind) == "1";
    const char* per_task = std::getenv("SLURM_CPUS_PER_TASK");
    cfg.runtime.threads = per_task && std::atoi(per_task) > 0 ? std::atoi(per_task)
                          : bound                             ? cpus
                                                              : std::max(1, cpus / n);
  }
  apply_runtime(cfg.runtime);

  // The host world first: a failure while choosing the device must still end every rank with its message.
  comm::World job;
  job.host = comm::make_host_world();
  comm::Communicator* world = job.host.get();
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
    comm::attach_device(job, device_request(cfg.runtime.device));
    if (world->rank() == 0) {
      spdlog::info("device {} ({} rank(s)); device communicator: {}", job.device.str(), world->size(),
                   job.device_comm().backend());
      for (const std::string& line : job.placement) spdlog::debug("{}", line);
    }
    return body(job);
  } catch (const InputError& e) {
    return fail(e.what(), kExitBadInput);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), kExitRuntime);
  } catch (const std::exception& e) {
    return fail(e.what(), kExitRuntime);
  }
}

}  // namespace lethe::cli
