// NCCL backend for CUDA tensors, bootstrapped over a host communicator (MPI): rank 0 creates the NCCL unique
// id, the bootstrap broadcasts its 128 bytes, every rank joins with a non-blocking ncclCommInitRankConfig
// that is polled with a deadline, then one warm-up all-reduce proves the fabric before any model is loaded.
//
// Streams: a collective runs on a dedicated stream that first waits (device-side) for the caller's current
// stream. wait() does not block the host: it makes the caller's current stream wait for the collective's
// event and marks the tensors involved as used on the NCCL stream (recordStream), so stage-2 buckets reduce
// while backward keeps queuing kernels. A watchdog thread polls every queued event and
// ncclCommGetAsyncError; a collective not done within LETHE_NCCL_TIMEOUT seconds (default 600), or an async
// error, aborts the communicator and ends the job with the rank's message: a dead peer never hangs it.
// Equal per-rank counts use ncclReduceScatter / ncclAllGather; uneven ones one ncclReduce / ncclBroadcast
// per owner inside a group.
// Compiled and linked in CI; run on a GPU only by bench/device_check.sh (BENCHMARKS.md says when).
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
  void watch();  // the watchdog thread's loop
  Communicator& bootstrap_;
  std::unique_ptr<NcclState> state_;
  int rank_, size_;
};

// NCCL's version as an integer (e.g. 23007), for `lethe info`.
int nccl_version();

}  // namespace lethe::comm
