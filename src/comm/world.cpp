#include "comm/world.h"

#include <cstdlib>

#include "comm/local.h"
#include "comm/mpi.h"
#include "core/error.h"

#if LETHE_HAVE_NCCL
#include "comm/nccl.h"
#endif

namespace lethe::comm {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(var)) return true;
  return false;
}

std::unique_ptr<Communicator> make_host_world() {
  if (launched_by_mpi()) return std::make_unique<MpiCommunicator>();
  return make_self();
}

void attach_device(World& w, DeviceRequest want) {
  w.device = choose_device(want, w.host->node_rank());
  w.placement = check_placement(*w.host, w.device);
  if (!w.device.is_cuda()) return;
  if (w.host->size() == 1) {
    w.device_owned = make_self();  // a group of one moves any tensor; kept apart from host all the same
    return;
  }
#if LETHE_HAVE_NCCL
  w.device_owned = std::make_unique<NcclCommunicator>(*w.host, w.device.index());
#else
  throw_input(
      "{} ranks on GPUs need NCCL, and this lethe was built without it (-DLETHE_WITH_NCCL=OFF or no "
      "nccl.h); rebuild with NCCL, or use --set runtime.device=cpu",
      w.host->size());
#endif
}

}  // namespace lethe::comm
