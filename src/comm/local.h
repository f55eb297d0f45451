// An in-process group of N ranks for unit tests: each rank is a thread holding a LocalCommunicator; the
// collectives rendezvous through shared memory and sum in rank order (so results are deterministic). A rank
// that calls abort() (or throws inside run_local) wakes every other rank, which then throws too: a failing
// test never hangs. size 1 is the single-process world used when lethe runs without a launcher.
#pragma once

#include <functional>
#include <memory>

#include "comm/communicator.h"

namespace lethe::comm {

// Thrown in every rank of a local group once one rank aborted.
class LocalAbort : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LocalShared;  // the group's rendezvous state (local.cpp)

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<LocalShared> shared, int rank, int size);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return size_ == 1 ? "self" : "local"; }
  void barrier() override;
  std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op) override;
  std::unique_ptr<Work> broadcast_async(torch::Tensor t, int root) override;
  std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                             std::vector<int64_t> counts) override;
  std::unique_ptr<Work> all_gather_async(torch::Tensor input, torch::Tensor output,
                                         std::vector<int64_t> counts) override;
  // Size 1: prints and exits the process. Size > 1: marks the group aborted and throws LocalAbort.
  [[noreturn]] void abort(const std::string& message, int code) override;

 private:
  // Publishes `t` as this rank's contribution, waits for all ranks, runs `fn` (which may read every rank's
  // contribution), then waits again so no rank reuses its buffer while another still reads it.
  void exchange(const torch::Tensor& t, const std::function<void(const std::vector<torch::Tensor>&)>& fn);

  std::shared_ptr<LocalShared> shared_;
  int rank_, size_;
};

// A single-process world.
std::unique_ptr<Communicator> make_self();

// Runs fn(comm) on `size` threads, one rank each, and rethrows the first rank's exception (after every
// thread has finished).
void run_local(int size, const std::function<void(Communicator&)>& fn);

}  // namespace lethe::comm
