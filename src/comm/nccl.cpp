#include "comm/nccl.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>
#include <nccl.h>

namespace lethe::comm {

struct NcclState {
  ncclComm_t comm = nullptr;
  c10::cuda::CUDAStream stream;
  int device;
};

namespace {

#define LETHE_NCCL_CHECK(call, rank)                                                              \
  do {                                                                                            \
    const ncclResult_t lethe_nccl_rc = (call);                                                    \
    if (lethe_nccl_rc != ncclSuccess)                                                             \
      throw std::runtime_error(                                                                   \
          fmt::format("rank {}: {} failed: {}", rank, #call, ncclGetErrorString(lethe_nccl_rc))); \
  } while (0)

ncclDataType_t nccl_type(torch::ScalarType s) {
  switch (s) {
    case torch::kFloat:
      return ncclFloat32;
    case torch::kDouble:
      return ncclFloat64;
    case torch::kLong:
      return ncclInt64;
    case torch::kInt:
      return ncclInt32;
    case torch::kByte:
    case torch::kBool:
      return ncclUint8;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kHalf:
      return ncclFloat16;
    default:
      throw std::runtime_error(fmt::format("NCCL backend: unsupported dtype {}", c10::toString(s)));
  }
}

bool is_16bit(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

// Completion of work queued on the NCCL stream: an event the caller's stream waits for. Polling the event
// together with the communicator's async error turns a failed peer into an exception.
class NcclWork : public Work {
 public:
  NcclWork(NcclState& s, int rank, CommStats& stats, torch::Tensor target, torch::Tensor result,
           std::vector<torch::Tensor> keep)
      : s_(s),
        rank_(rank),
        stats_(stats),
        target_(std::move(target)),
        result_(std::move(result)),
        keep_(std::move(keep)) {
    event_.record(s_.stream);
  }
  ~NcclWork() override {
    try {
      wait();  // the kept tensors must outlive the collective that reads them
    } catch (...) {
    }
  }
  void wait() override {
    if (done_) return;
    const auto t0 = std::chrono::steady_clock::now();
    const char* env = std::getenv("LETHE_NCCL_TIMEOUT");
    const double limit = env ? std::atof(env) : 600.0;
    while (!event_.query()) {
      ncclResult_t async = ncclSuccess;
      LETHE_NCCL_CHECK(ncclCommGetAsyncError(s_.comm, &async), rank_);
      LETHE_NCCL_CHECK(async, rank_);
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > limit) {
        ncclCommAbort(s_.comm);
        s_.comm = nullptr;
        throw std::runtime_error(
            fmt::format("rank {}: NCCL collective did not finish within {} s "
                        "(LETHE_NCCL_TIMEOUT); a peer is gone or stuck",
                        rank_, limit));
      }
      std::this_thread::yield();
    }
    done_ = true;
    if (result_.defined()) target_.copy_(result_);
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  NcclState& s_;
  int rank_;
  CommStats& stats_;
  torch::Tensor target_, result_;
  std::vector<torch::Tensor> keep_;
  at::cuda::CUDAEvent event_;
  bool done_ = false;
};

// The NCCL stream starts after everything already queued on the caller's stream.
void order_after_current(NcclState& s) {
  at::cuda::CUDAEvent ready;
  ready.record(c10::cuda::getCurrentCUDAStream(s.device));
  ready.block(s.stream);
}

void check_counts(const std::vector<int64_t>& counts, int size, const char* what) {
  if (static_cast<int>(counts.size()) != size)
    throw std::runtime_error(fmt::format("NCCL backend: {} needs one count per rank", what));
}

void check_cuda(const torch::Tensor& t, const char* what) {
  if (!t.is_cuda() || !t.is_contiguous())
    throw std::runtime_error(fmt::format("NCCL backend: {} needs a contiguous CUDA tensor", what));
}

}  // namespace

int local_device(int device_count) {
  int local = 0;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) {
      local = std::atoi(v);
      break;
    }
  return device_count > 0 ? local % device_count : 0;
}

int nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  return v;
}

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, int device)
    : bootstrap_(bootstrap), rank_(bootstrap.rank()), size_(bootstrap.size()) {
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  state_ = std::make_unique<NcclState>(
      NcclState{nullptr, c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device), device});
  ncclUniqueId id;
  if (rank_ == 0) LETHE_NCCL_CHECK(ncclGetUniqueId(&id), rank_);
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(sizeof(id))}, torch::kByte);
  std::memcpy(bytes.data_ptr(), &id, sizeof(id));
  bootstrap_.broadcast(bytes, 0);
  std::memcpy(&id, bytes.data_ptr(), sizeof(id));
  LETHE_NCCL_CHECK(ncclCommInitRank(&state_->comm, size_, id, rank_), rank_);
}

NcclCommunicator::~NcclCommunicator() {
  if (state_ && state_->comm) ncclCommDestroy(state_->comm);
}

void NcclCommunicator::barrier() {
  ++stats_.calls;
  bootstrap_.barrier();
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(torch::Tensor t, ReduceOp op) {
  check_cuda(t, "all_reduce");
  ++stats_.calls;
  stats_.all_reduce_bytes += static_cast<int64_t>(t.nbytes());
  torch::Tensor buf = is_16bit(t) ? t.to(torch::kFloat) : t;
  order_after_current(*state_);
  LETHE_NCCL_CHECK(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), buf.numel(), nccl_type(buf.scalar_type()),
                                 op == ReduceOp::kSum ? ncclSum : ncclMax, state_->comm, state_->stream),
                   rank_);
  return std::make_unique<NcclWork>(*state_, rank_, stats_, t, is_16bit(t) ? buf : torch::Tensor(),
                                    std::vector{buf});
}

std::unique_ptr<Work> NcclCommunicator::broadcast_async(torch::Tensor t, int root) {
  check_cuda(t, "broadcast");
  ++stats_.calls;
  stats_.broadcast_bytes += static_cast<int64_t>(t.nbytes());
  order_after_current(*state_);
  LETHE_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root,
                                 state_->comm, state_->stream),
                   rank_);
  return std::make_unique<NcclWork>(*state_, rank_, stats_, torch::Tensor(), torch::Tensor(), std::vector{t});
}

std::unique_ptr<Work> NcclCommunicator::reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                                             std::vector<int64_t> counts) {
  check_cuda(input, "reduce_scatter input");
  check_cuda(output, "reduce_scatter output");
  check_counts(counts, size_, "reduce_scatter");
  ++stats_.calls;
  stats_.reduce_scatter_bytes += static_cast<int64_t>(input.nbytes());
  torch::Tensor in = is_16bit(input) ? input.to(torch::kFloat) : input;
  torch::Tensor out =
      output.scalar_type() == in.scalar_type() ? output : torch::empty({output.numel()}, in.options());
  order_after_current(*state_);
  // NCCL's reduce-scatter needs equal pieces; uneven ones are one reduce per owner inside a group.
  const size_t elem = in.element_size();
  int64_t offset = 0;
  LETHE_NCCL_CHECK(ncclGroupStart(), rank_);
  for (int r = 0; r < size_; ++r) {
    const char* send = static_cast<const char*>(in.data_ptr()) + offset * elem;
    void* recv = r == rank_ ? out.data_ptr() : const_cast<char*>(send);
    LETHE_NCCL_CHECK(ncclReduce(send, recv, counts[r], nccl_type(in.scalar_type()), ncclSum, r, state_->comm,
                                state_->stream),
                     rank_);
    offset += counts[r];
  }
  LETHE_NCCL_CHECK(ncclGroupEnd(), rank_);
  const bool cast_back = out.data_ptr() != output.data_ptr();
  return std::make_unique<NcclWork>(*state_, rank_, stats_, output, cast_back ? out : torch::Tensor(),
                                    std::vector{in, out});
}

std::unique_ptr<Work> NcclCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                                         std::vector<int64_t> counts) {
  check_cuda(input, "all_gather input");
  check_cuda(output, "all_gather output");
  check_counts(counts, size_, "all_gather");
  ++stats_.calls;
  stats_.all_gather_bytes += static_cast<int64_t>(output.nbytes());
  order_after_current(*state_);
  const size_t elem = output.element_size();
  int64_t offset = 0;
  LETHE_NCCL_CHECK(ncclGroupStart(), rank_);
  for (int r = 0; r < size_; ++r) {
    char* recv = static_cast<char*>(output.data_ptr()) + offset * elem;
    LETHE_NCCL_CHECK(ncclBroadcast(r == rank_ ? input.data_ptr() : recv, recv, counts[r],
                                   nccl_type(output.scalar_type()), r, state_->comm, state_->stream),
                     rank_);
    offset += counts[r];
  }
  LETHE_NCCL_CHECK(ncclGroupEnd(), rank_);
  return std::make_unique<NcclWork>(*state_, rank_, stats_, torch::Tensor(), torch::Tensor(),
                                    std::vector{input, output});
}

void NcclCommunicator::abort(const std::string& message, int code) {
  if (state_ && state_->comm) {
    ncclCommAbort(state_->comm);
    state_->comm = nullptr;
  }
  bootstrap_.abort(message, code);
  std::abort();  // not reached: abort() ends the process
}

}  // namespace lethe::comm
