// NCCL backend for CUDA tensors, bootstrapped over MPI: rank 0 creates the NCCL unique id, the bootstrap
// communicator broadcasts its 128 bytes, every rank joins with ncclCommInitRank. Collectives run on a
// dedicated stream that first waits for the caller's current stream. wait() blocks the host until the
// collective is done, polling ncclCommGetAsyncError, and gives up after LETHE_NCCL_TIMEOUT seconds (default
// 600): the communicator is aborted and an error thrown, so a failed or hung peer never hangs the job.
// Compiled and linked in CI; not yet run on a GPU.
// Built only when libtorch is a CUDA build and NCCL is found (LETHE_HAVE_NCCL); it links the wheel's NCCL,
// the same library libtorch uses.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace lethe::comm {

struct NcclState;  // ncclComm_t, stream (nccl.cpp keeps NCCL and CUDA headers out of this header)

class NcclCommunicator : public Communicator {
 public:
  // `bootstrap` (normally MPI) supplies rank and size and carries the unique id; `device` is this rank's GPU.
  NcclCommunicator(Communicator& bootstrap, int device);
  ~NcclCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  void barrier() override;
  std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(torch::Tensor t, int root) override;
  std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                             std::vector<int64_t> counts) override;
  std::unique_ptr<Work> all_gather_async(torch::Tensor input, torch::Tensor output,
                                         std::vector<int64_t> counts) override;
  [[noreturn]] void abort(const std::string& message, int code) override;

 private:
  Communicator& bootstrap_;
  std::unique_ptr<NcclState> state_;
  int rank_, size_;
};

// This rank's GPU among `device_count` visible ones: the launcher's local rank (Open MPI, Slurm) modulo the
// count, as NCCL's one-device-per-process pattern expects.
int local_device(int device_count);

// NCCL's version as an integer (e.g. 23007), for `lethe info`.
int nccl_version();

}  // namespace lethe::comm
