// `lethe info [--json]`: what this binary was built with.
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#if LETHE_HAVE_NCCL
#include <nccl.h>
#endif

#include "cli/common.h"
#include "lethe/version.h"

namespace lethe::cli {

int run_info(int argc, char** argv) {
  bool json = false;
  po::options_description desc;
  desc.add_options()("json", po::bool_switch(&json), "machine-readable output");
  if (!parse(argc, argv, desc, "lethe info [--json]", "Version, libtorch, built-in backends.")) return 0;

  // The NCCL library is linked (the one libtorch uses) so its version is real; the communicators over MPI and
  // NCCL land with the distributed engine and are reported as not built until then, never faked.
  nlohmann::json nccl_library = nullptr;
#if LETHE_HAVE_NCCL
  int v = 0;
  if (ncclGetVersion(&v) == ncclSuccess)
    nccl_library = fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
#endif
  nlohmann::json j = {
      {"version", LETHE_VERSION},
      {"libtorch", LETHE_TORCH_VERSION},
      {"cuda_build", static_cast<bool>(LETHE_HAVE_CUDA)},
      {"mpi", false},
      {"nccl", false},
      {"nccl_library", nccl_library},
      {"hdf5", false},
      {"faiss", false},
      {"world_size", 1},
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
