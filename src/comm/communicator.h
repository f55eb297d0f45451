// The communicator every distributed piece talks through (architecture.md §1): rank, size, barrier and the
// collectives ZeRO needs, blocking and non-blocking. Backends: MPI for host tensors (comm/mpi.h), NCCL for
// CUDA tensors bootstrapped over MPI (comm/nccl.h), and an in-process group of N threads for unit tests
// (comm/local.h). The model never sees this interface; only zero/ and train/ do.
//
// Semantics shared by every backend:
// - Every rank calls the same collectives in the same order with tensors of the same dtype and total size.
// - Tensors are contiguous. MPI and the in-process group reduce 16-bit floats in fp32 (MPI has no bf16 type:
//   cast around the reduction); NCCL reduces them natively, which is why a caller sends bf16 at all (half
//   the bytes; zero.reduce_bf16), at bf16 rounding of the partial sums. fp32 and wider reduce alike
//   everywhere. A reduce-scatter output may have another dtype than its input: it receives a cast copy.
// - reduce_scatter / all_gather take per-rank element counts, so a bucket of the flat buffer that covers an
//   uneven part of each rank's slice is one call (MPI_Reduce_scatter / MPI_Allgatherv).
// - A failed call throws std::runtime_error naming the rank and the call; the caller turns that into
//   abort(), which ends every rank of the job with that message. Nothing is allowed to hang.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace lethe::comm {

enum class ReduceOp { kSum, kMax };

// What this rank has sent through the communicator: message bytes per collective kind (the tensor sizes
// handed in, not wire bytes: ring algorithms send (N-1)/N of a reduce-scatter's input per rank), calls and
// the wall time spent blocked in collectives (exposed communication).
struct CommStats {
  int64_t calls = 0;
  int64_t all_reduce_bytes = 0;
  int64_t reduce_scatter_bytes = 0;  // input bytes (the whole bucket)
  int64_t all_gather_bytes = 0;      // output bytes (the whole gathered bucket)
  int64_t broadcast_bytes = 0;
  double seconds = 0;
};

// A collective in flight. wait() blocks until its output is ready (and copies a cast result back).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's place among the ranks that share its machine (MPI_Comm_split_type(SHARED) for MPI): what
  // picks its GPU. An in-process group is one machine.
  virtual int node_rank() const { return rank(); }
  virtual int node_size() const { return size(); }
  virtual std::string backend() const = 0;

  virtual void barrier() = 0;
  // t: same shape on every rank, reduced in place.
  virtual std::unique_ptr<Work> all_reduce_async(torch::Tensor t, ReduceOp op) = 0;
  // t: filled on every rank with root's values.
  virtual std::unique_ptr<Work> broadcast_async(torch::Tensor t, int root) = 0;
  // input: [sum(counts)] on every rank; output: [counts[rank]] receives the sum over ranks of input's piece
  // number `rank` (pieces laid out in rank order).
  virtual std::unique_ptr<Work> reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                                     std::vector<int64_t> counts) = 0;
  // input: [counts[rank]]; output: [sum(counts)] = the inputs of ranks 0..N-1 back to back. input may be
  // the view of output at this rank's piece (in place).
  virtual std::unique_ptr<Work> all_gather_async(torch::Tensor input, torch::Tensor output,
                                                 std::vector<int64_t> counts) = 0;
  // Ends every rank of the job: prints `message` (already prefixed with the rank) and exits with `code`.
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;

  // Blocking forms.
  void all_reduce(torch::Tensor t, ReduceOp op = ReduceOp::kSum) {
    all_reduce_async(std::move(t), op)->wait();
  }
  void broadcast(torch::Tensor t, int root) { broadcast_async(std::move(t), root)->wait(); }
  void reduce_scatter(torch::Tensor in, torch::Tensor out, std::vector<int64_t> counts) {
    reduce_scatter_async(std::move(in), std::move(out), std::move(counts))->wait();
  }
  void all_gather(torch::Tensor in, torch::Tensor out, std::vector<int64_t> counts) {
    all_gather_async(std::move(in), std::move(out), std::move(counts))->wait();
  }
  // Scalar agreement for control flow (stop flags, token counts): every rank gets the same value.
  int64_t all_reduce_int(int64_t v, ReduceOp op = ReduceOp::kSum);
  double all_reduce_double(double v, ReduceOp op = ReduceOp::kSum);

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  CommStats stats_;
};

// Equal pieces: counts for splitting n elements into size() parts (n must divide evenly).
std::vector<int64_t> equal_counts(int64_t n, int size);

// The host world this process belongs to: MPI when started by mpirun/srun (the launcher's environment says
// so), otherwise a group of one. Initialises MPI when needed; safe to call once per process. comm/world.h
// adds the device communicator beside it.
std::unique_ptr<Communicator> make_host_world();

// True when this process was started by an MPI launcher (mpirun, srun with PMI/PMIx).
bool launched_by_mpi();

}  // namespace lethe::comm
