// `lethe info [--json]`: what this binary was built with.
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <H5public.h>

#if LETHE_HAVE_NCCL
#include "comm/nccl.h"
#endif

#include "cli/common.h"
#include "comm/communicator.h"
#include "comm/device.h"
#include "comm/mpi.h"
#include "lethe/version.h"

namespace lethe::cli {

int run_info(int argc, char** argv) {
  bool json = false;
  po::options_description desc;
  desc.add_options()("json", po::bool_switch(&json), "machine-readable output");
  if (!parse(argc, argv, desc, "lethe info [--json]", "Version, libtorch, built-in backends.")) return 0;

  // Versions come from the linked libraries themselves. `nccl` = the NCCL communicator is compiled in
  // (comm/nccl.cpp, which needs a CUDA libtorch and NCCL); its library version is asked of NCCL.
  nlohmann::json nccl_library = nullptr;
#if LETHE_HAVE_NCCL
  const int v = comm::nccl_version();
  if (v > 0) nccl_library = fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
#endif
  // The GPUs this process sees (under lethe-run / srun with binding: the one of this rank).
  nlohmann::json gpus = nlohmann::json::array();
  for (int i = 0; i < comm::cuda_device_count(); ++i) {
    const comm::GpuInfo g = comm::gpu_info(i);
    gpus.push_back({{"index", g.index},
                    {"name", g.name},
                    {"bus_id", g.bus_id},
                    {"uuid", g.uuid},
                    {"memory_bytes", g.total_bytes},
                    {"capability", fmt::format("{}.{}", g.capability / 10, g.capability % 10)}});
  }
  unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
  H5get_libversion(&h5_major, &h5_minor, &h5_release);
  nlohmann::json j = {
      {"version", LETHE_VERSION},
      {"libtorch", LETHE_TORCH_VERSION},
      {"cuda_build", static_cast<bool>(LETHE_HAVE_CUDA)},
      {"gpus", gpus},
      {"device_auto", gpus.empty() ? "cpu" : "cuda"},
      {"mpi", true},
      {"mpi_library", comm::mpi_library_version()},
      {"launched_by_mpi", comm::launched_by_mpi()},
      {"nccl", static_cast<bool>(LETHE_HAVE_NCCL)},
      {"nccl_library", nccl_library},
      {"hdf5", fmt::format("{}.{}.{}", h5_major, h5_minor, h5_release)},
      {"faiss", false},
      {"threads", at::get_num_threads()},
      {"cores", std::thread::hardware_concurrency()},
  };
  if (json) {
    print_json(j);
    return 0;
  }
  for (auto& [k, v] : j.items()) std::cout << fmt::format("{:<12}{}\n", k, v.dump());
  return 0;
}

}  // namespace lethe::cli
