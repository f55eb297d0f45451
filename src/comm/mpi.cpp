#include "comm/mpi.h"

#include <chrono>
#include <climits>
#include <iostream>
#include <stdexcept>

#include <mpi.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace lethe::comm {
namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

int world_rank() {
  int inited = 0, rank = -1;
  MPI_Initialized(&inited);
  if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

#define LETHE_MPI_CHECK(call)                                                                               \
  do {                                                                                                      \
    const int lethe_mpi_rc = (call);                                                                        \
    if (lethe_mpi_rc != MPI_SUCCESS)                                                                        \
      throw std::runtime_error(fmt::format("rank {}: {} failed ({}:{}): {}", world_rank(), #call, __FILE__, \
                                           __LINE__, mpi_error(lethe_mpi_rc)));                             \
  } while (0)

// Reductions need an MPI arithmetic type: 16-bit floats are reduced as fp32 (and cast back on wait).
bool needs_fp32(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

// The MPI type for moving (not reducing) the elements of t; 16-bit floats travel as their raw bits.
MPI_Datatype mpi_type(torch::ScalarType s) {
  switch (s) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kLong:
      return MPI_INT64_T;
    case torch::kInt:
      return MPI_INT32_T;
    case torch::kByte:
    case torch::kBool:
      return MPI_UINT8_T;
    case torch::kBFloat16:
    case torch::kHalf:
      return MPI_UINT16_T;
    default:
      throw std::runtime_error(fmt::format("MPI backend: unsupported dtype {}", c10::toString(s)));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  return op == ReduceOp::kSum ? MPI_SUM : MPI_MAX;
}

int to_int(int64_t n, const char* what) {
  if (n > INT_MAX)
    throw std::runtime_error(
        fmt::format("MPI backend: {} of {} elements exceeds MPI's int count; use a "
                    "smaller zero.bucket_numel",
                    what, n));
  return static_cast<int>(n);
}

// One non-blocking MPI call in flight. `result` (when defined) is an fp32 stand-in reduced instead of
// `target`, copied back on wait; `keep` holds buffers MPI still reads.
class MpiWork : public Work {
 public:
  MpiWork(MPI_Request req, CommStats& stats, torch::Tensor target = {}, torch::Tensor result = {},
          std::vector<torch::Tensor> keep = {})
      : req_(req),
        stats_(stats),
        target_(std::move(target)),
        result_(std::move(result)),
        keep_(std::move(keep)) {}
  ~MpiWork() override {
    if (!done_) {
      try {
        wait();
      } catch (...) {
      }
    }
  }
  void wait() override {
    if (done_) return;
    const auto t0 = std::chrono::steady_clock::now();
    LETHE_MPI_CHECK(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    done_ = true;
    if (result_.defined()) target_.copy_(result_);
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  MPI_Request req_;
  CommStats& stats_;
  torch::Tensor target_, result_;
  std::vector<torch::Tensor> keep_;
  bool done_ = false;
};

void check_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.is_contiguous() || t.device().type() != torch::kCPU)
    throw std::runtime_error(fmt::format("MPI backend: {} needs a contiguous CPU tensor", what));
}

}  // namespace

MpiCommunicator::MpiCommunicator() {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) throw std::runtime_error("MPI_Init_thread failed: " + mpi_error(rc));
    initialised_here_ = true;
    if (provided < MPI_THREAD_SERIALIZED)
      throw std::runtime_error(
          fmt::format("this MPI grants thread level {} but lethe needs MPI_THREAD_SERIALIZED "
                      "({}): use an MPI built with thread support",
                      provided, static_cast<int>(MPI_THREAD_SERIALIZED)));
  }
  LETHE_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  LETHE_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  LETHE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  // The ranks sharing this machine, from MPI itself: launcher variables (SLURM_LOCALID, LOCAL_RANK) may be
  // set for the whole job by a batch script and then name the wrong GPU.
  MPI_Comm node = MPI_COMM_NULL;
  LETHE_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  LETHE_MPI_CHECK(MPI_Comm_rank(node, &node_rank_));
  LETHE_MPI_CHECK(MPI_Comm_size(node, &node_size_));
  LETHE_MPI_CHECK(MPI_Comm_free(&node));
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (initialised_here_ && !finalized) MPI_Finalize();
}

void MpiCommunicator::barrier() {
  ++stats_.calls;
  const auto t0 = std::chrono::steady_clock::now();
  LETHE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(torch::Tensor t, ReduceOp op) {
  check_contiguous(t, "all_reduce");
  ++stats_.calls;
  stats_.all_reduce_bytes += static_cast<int64_t>(t.nbytes());
  torch::Tensor buf = needs_fp32(t) ? t.to(torch::kFloat) : t;
  MPI_Request req;
  LETHE_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf.data_ptr(), to_int(buf.numel(), "all_reduce"),
                                 mpi_type(buf.scalar_type()), mpi_op(op), MPI_COMM_WORLD, &req));
  return std::make_unique<MpiWork>(req, stats_, t, needs_fp32(t) ? buf : torch::Tensor());
}

std::unique_ptr<Work> MpiCommunicator::broadcast_async(torch::Tensor t, int root) {
  check_contiguous(t, "broadcast");
  ++stats_.calls;
  stats_.broadcast_bytes += static_cast<int64_t>(t.nbytes());
  MPI_Request req;
  LETHE_MPI_CHECK(MPI_Ibcast(t.data_ptr(), to_int(t.numel(), "broadcast"), mpi_type(t.scalar_type()), root,
                             MPI_COMM_WORLD, &req));
  return std::make_unique<MpiWork>(req, stats_, torch::Tensor(), torch::Tensor(), std::vector{t});
}

std::unique_ptr<Work> MpiCommunicator::reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                                            std::vector<int64_t> counts) {
  check_contiguous(input, "reduce_scatter input");
  check_contiguous(output, "reduce_scatter output");
  TORCH_CHECK(static_cast<int>(counts.size()) == size_, "reduce_scatter: one count per rank");
  ++stats_.calls;
  stats_.reduce_scatter_bytes += static_cast<int64_t>(input.nbytes());
  torch::Tensor in = needs_fp32(input) ? input.to(torch::kFloat) : input;
  torch::Tensor out =
      output.scalar_type() == in.scalar_type() ? output : torch::empty({output.numel()}, in.options());
  std::vector<int> c(counts.size());
  for (size_t r = 0; r < counts.size(); ++r) c[r] = to_int(counts[r], "reduce_scatter");
  MPI_Request req;
  LETHE_MPI_CHECK(MPI_Ireduce_scatter(in.data_ptr(), out.data_ptr(), c.data(), mpi_type(in.scalar_type()),
                                      MPI_SUM, MPI_COMM_WORLD, &req));
  const bool cast_back = out.data_ptr() != output.data_ptr();
  return std::make_unique<MpiWork>(req, stats_, output, cast_back ? out : torch::Tensor(),
                                   std::vector{in, out});
}

std::unique_ptr<Work> MpiCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                                        std::vector<int64_t> counts) {
  check_contiguous(input, "all_gather input");
  check_contiguous(output, "all_gather output");
  TORCH_CHECK(static_cast<int>(counts.size()) == size_, "all_gather: one count per rank");
  TORCH_CHECK(input.scalar_type() == output.scalar_type(), "all_gather: input and output dtypes differ");
  ++stats_.calls;
  stats_.all_gather_bytes += static_cast<int64_t>(output.nbytes());
  std::vector<int> c(counts.size()), displs(counts.size());
  int64_t offset = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    c[r] = to_int(counts[r], "all_gather");
    displs[r] = to_int(offset, "all_gather offset");
    offset += counts[r];
  }
  const MPI_Datatype type = mpi_type(output.scalar_type());
  const auto* mine = static_cast<const char*>(output.data_ptr()) + displs[rank_] * output.element_size();
  const void* send = input.data_ptr() == mine ? MPI_IN_PLACE : input.data_ptr();
  MPI_Request req;
  LETHE_MPI_CHECK(MPI_Iallgatherv(send, c[rank_], type, output.data_ptr(), c.data(), displs.data(), type,
                                  MPI_COMM_WORLD, &req));
  return std::make_unique<MpiWork>(req, stats_, torch::Tensor(), torch::Tensor(), std::vector{input, output});
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);
  const std::string v(text, len);
  return v.substr(0, v.find(','));
}

void MpiCommunicator::abort(const std::string& message, int code) {
  std::cerr << message << std::endl;
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);  // MPI_Abort does not return; this satisfies [[noreturn]]
}

}  // namespace lethe::comm
