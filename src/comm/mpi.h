// MPI backend for host tensors. Every call goes through LETHE_MPI_CHECK: MPI_ERRORS_RETURN is set on the
// world communicator, so a failure comes back as a std::runtime_error naming the rank, the call and MPI's
// error string instead of MPI's default silent abort.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace lethe::comm {

class MpiCommunicator : public Communicator {
 public:
  // Initialises MPI (MPI_THREAD_SERIALIZED: only one thread calls MPI at a time) unless already done, and
  // finalises it in the destructor when it did.
  MpiCommunicator();
  ~MpiCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int node_rank() const override { return node_rank_; }
  int node_size() const override { return node_size_; }
  std::string backend() const override { return "mpi"; }
  void barrier() override;
  std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(torch::Tensor t, int root) override;
  std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                             std::vector<int64_t> counts) override;
  std::unique_ptr<Work> all_gather_async(torch::Tensor input, torch::Tensor output,
                                         std::vector<int64_t> counts) override;
  [[noreturn]] void abort(const std::string& message, int code) override;

 private:
  int rank_ = 0, size_ = 1, node_rank_ = 0, node_size_ = 1;
  bool initialised_here_ = false;
};

// "Open MPI v4.1.4" (the library's own version string, first clause).
std::string mpi_library_version();

}  // namespace lethe::comm
