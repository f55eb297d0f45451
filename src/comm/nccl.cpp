#include "comm/nccl.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>
#include <nccl.h>

namespace lethe::comm {

namespace {
double timeout_seconds() {
  const char* env = std::getenv("LETHE_NCCL_TIMEOUT");
  const double v = env ? std::atof(env) : 600.0;
  return v > 0 ? v : 600.0;
}
}  // namespace

// The communicator, its stream, and the watchdog that turns a stuck or failed collective into a job abort.
struct NcclState {
  NcclState(c10::cuda::CUDAStream s, int d) : stream(s), device(d) {}
  ncclComm_t comm = nullptr;
  c10::cuda::CUDAStream stream;
  int device;
  double timeout = timeout_seconds();
  // Collectives queued and not yet seen complete by the watchdog: (completion event, when queued).
  std::mutex mu;
  std::deque<std::pair<std::shared_ptr<at::cuda::CUDAEvent>, std::chrono::steady_clock::time_point>> queued;
  std::atomic<bool> stop{false};
  std::thread watchdog;
};

namespace {

using Clock = std::chrono::steady_clock;

#define LETHE_NCCL_CHECK(call, rank)                                                              \
  do {                                                                                            \
    const ncclResult_t lethe_nccl_rc = (call);                                                    \
    if (lethe_nccl_rc != ncclSuccess && lethe_nccl_rc != ncclInProgress)                          \
      throw std::runtime_error(                                                                   \
          fmt::format("rank {}: {} failed: {}", rank, #call, ncclGetErrorString(lethe_nccl_rc))); \
  } while (0)

// A non-blocking communicator may still be working on the last call (ncclInProgress): poll its state until
// it settles, with a deadline, so that a peer that never arrives (at init, typically) cannot hang the job.
void settle(ncclComm_t comm, int rank, double limit, const char* what) {
  const auto t0 = Clock::now();
  for (;;) {
    ncclResult_t state = ncclSuccess;
    LETHE_NCCL_CHECK(ncclCommGetAsyncError(comm, &state), rank);
    if (state == ncclSuccess) return;
    if (state != ncclInProgress)
      throw std::runtime_error(
          fmt::format("rank {}: NCCL {} failed: {}", rank, what, ncclGetErrorString(state)));
    if (std::chrono::duration<double>(Clock::now() - t0).count() > limit)
      throw std::runtime_error(fmt::format(
          "rank {}: NCCL {} did not finish within {} s (LETHE_NCCL_TIMEOUT); a peer is gone, stuck or "
          "unreachable (check NCCL_SOCKET_IFNAME and that every rank started)",
          rank, what, limit));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

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

// Completion of work queued on the NCCL stream. wait() orders the caller's current stream after it on the
// device; the host goes on. The tensors the collective reads or writes are marked as used on the NCCL
// stream, so the caching allocator does not hand their memory out again before the collective is done.
class NcclWork : public Work {
 public:
  NcclWork(NcclState& s, CommStats& stats, torch::Tensor target, torch::Tensor result,
           const std::vector<torch::Tensor>& used)
      : s_(s), stats_(stats), target_(std::move(target)), result_(std::move(result)) {
    for (const torch::Tensor& t : used)
      if (t.defined() && t.numel() > 0)
        c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), s_.stream);
    event_ = std::make_shared<at::cuda::CUDAEvent>();
    event_->record(s_.stream);
    std::lock_guard lock(s_.mu);
    s_.queued.emplace_back(event_, Clock::now());
  }
  ~NcclWork() override { wait(); }
  void wait() override {
    if (done_) return;
    done_ = true;
    const auto t0 = Clock::now();
    event_->block(c10::cuda::getCurrentCUDAStream(s_.device));
    if (result_.defined()) target_.copy_(result_);  // queued after the event on the current stream
    stats_.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }

 private:
  NcclState& s_;
  CommStats& stats_;
  torch::Tensor target_, result_;
  std::shared_ptr<at::cuda::CUDAEvent> event_;
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

int nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  return v;
}

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, int device)
    : bootstrap_(bootstrap), rank_(bootstrap.rank()), size_(bootstrap.size()) {
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  state_ = std::make_unique<NcclState>(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device), device);
  ncclUniqueId id;
  if (rank_ == 0) LETHE_NCCL_CHECK(ncclGetUniqueId(&id), rank_);
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(sizeof(id))}, torch::kByte);
  std::memcpy(bytes.data_ptr(), &id, sizeof(id));
  bootstrap_.broadcast(bytes, 0);
  std::memcpy(&id, bytes.data_ptr(), sizeof(id));
  // Non-blocking, so that initialisation too runs under the deadline.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  LETHE_NCCL_CHECK(ncclCommInitRankConfig(&state_->comm, size_, id, rank_, &config), rank_);
  settle(state_->comm, rank_, state_->timeout, "initialisation (ncclCommInitRankConfig)");
  // Warm-up: one all-reduce, waited for on the host with the same deadline. A fabric that cannot carry it
  // fails here, before the model is loaded.
  torch::Tensor one =
      torch::ones({1}, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, device));
  all_reduce(one);
  at::cuda::CUDAEvent done;
  done.record(c10::cuda::getCurrentCUDAStream(device));
  const auto t0 = Clock::now();
  while (!done.query()) {
    settle(state_->comm, rank_, state_->timeout, "warm-up all-reduce");
    if (std::chrono::duration<double>(Clock::now() - t0).count() > state_->timeout)
      throw std::runtime_error(fmt::format("rank {}: the NCCL warm-up all-reduce did not finish within {} s",
                                           rank_, state_->timeout));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const float sum = one.item<float>();
  if (sum != static_cast<float>(size_))
    throw std::runtime_error(
        fmt::format("rank {}: the NCCL warm-up all-reduce gave {} instead of {}", rank_, sum, size_));
  std::lock_guard lock(state_->mu);
  state_->queued.clear();
  state_->watchdog = std::thread([this] { watch(); });
}

void NcclCommunicator::watch() {
  NcclState& s = *state_;
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(s.device));
  while (!s.stop.load()) {
    std::string failure;
    {
      std::lock_guard lock(s.mu);
      while (!s.queued.empty() && s.queued.front().first->query()) s.queued.pop_front();
      ncclResult_t state = ncclSuccess;
      if (s.comm && ncclCommGetAsyncError(s.comm, &state) == ncclSuccess && state != ncclSuccess &&
          state != ncclInProgress)
        failure = fmt::format("NCCL reported an asynchronous error: {}", ncclGetErrorString(state));
      else if (!s.queued.empty() &&
               std::chrono::duration<double>(Clock::now() - s.queued.front().second).count() > s.timeout)
        failure = fmt::format(
            "an NCCL collective did not finish within {} s (LETHE_NCCL_TIMEOUT); a peer is gone or stuck",
            s.timeout);
    }
    if (!failure.empty()) abort(fmt::format("error (rank {} of {}): {}", rank_, size_, failure), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

NcclCommunicator::~NcclCommunicator() {
  if (!state_) return;
  state_->stop = true;
  if (state_->watchdog.joinable()) state_->watchdog.join();
  if (state_->comm) ncclCommDestroy(state_->comm);
}

void NcclCommunicator::barrier() {
  ++stats_.calls;
  bootstrap_.barrier();
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(torch::Tensor t, ReduceOp op) {
  check_cuda(t, "all_reduce");
  ++stats_.calls;
  stats_.all_reduce_bytes += static_cast<int64_t>(t.nbytes());
  // 16-bit floats are reduced natively (the point of sending them: half the bytes); see communicator.h.
  order_after_current(*state_);
  LETHE_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                                 op == ReduceOp::kSum ? ncclSum : ncclMax, state_->comm, state_->stream),
                   rank_);
  return std::make_unique<NcclWork>(*state_, stats_, torch::Tensor(), torch::Tensor(), std::vector{t});
}

std::unique_ptr<Work> NcclCommunicator::broadcast_async(torch::Tensor t, int root) {
  check_cuda(t, "broadcast");
  ++stats_.calls;
  stats_.broadcast_bytes += static_cast<int64_t>(t.nbytes());
  order_after_current(*state_);
  LETHE_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root,
                                 state_->comm, state_->stream),
                   rank_);
  return std::make_unique<NcclWork>(*state_, stats_, torch::Tensor(), torch::Tensor(), std::vector{t});
}

std::unique_ptr<Work> NcclCommunicator::reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                                             std::vector<int64_t> counts) {
  check_cuda(input, "reduce_scatter input");
  check_cuda(output, "reduce_scatter output");
  check_counts(counts, size_, "reduce_scatter");
  ++stats_.calls;
  stats_.reduce_scatter_bytes += static_cast<int64_t>(input.nbytes());
  // Sent and summed in the input's dtype (16-bit natively); an output of another dtype (the engine's fp32
  // owned gradient) receives a cast copy on wait.
  const torch::Tensor& in = input;
  torch::Tensor out =
      output.scalar_type() == in.scalar_type() ? output : torch::empty({output.numel()}, in.options());
  order_after_current(*state_);
  const bool equal = std::all_of(counts.begin(), counts.end(), [&](int64_t c) { return c == counts[0]; });
  if (equal) {
    LETHE_NCCL_CHECK(ncclReduceScatter(in.data_ptr(), out.data_ptr(), counts[0], nccl_type(in.scalar_type()),
                                       ncclSum, state_->comm, state_->stream),
                     rank_);
  } else {
    // Uneven pieces: one reduce per owner inside a group.
    const size_t elem = in.element_size();
    int64_t offset = 0;
    LETHE_NCCL_CHECK(ncclGroupStart(), rank_);
    for (int r = 0; r < size_; ++r) {
      const char* send = static_cast<const char*>(in.data_ptr()) + offset * elem;
      void* recv = r == rank_ ? out.data_ptr() : const_cast<char*>(send);
      const ncclResult_t rc = ncclReduce(send, recv, counts[r], nccl_type(in.scalar_type()), ncclSum, r,
                                         state_->comm, state_->stream);
      if (rc != ncclSuccess && rc != ncclInProgress) {
        ncclGroupEnd();  // never leave a group open
        LETHE_NCCL_CHECK(rc, rank_);
      }
      offset += counts[r];
    }
    LETHE_NCCL_CHECK(ncclGroupEnd(), rank_);
  }
  const bool cast_back = out.data_ptr() != output.data_ptr();
  return std::make_unique<NcclWork>(*state_, stats_, output, cast_back ? out : torch::Tensor(),
                                    std::vector{in, out});
}

std::unique_ptr<Work> NcclCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                                         std::vector<int64_t> counts) {
  check_cuda(input, "all_gather input");
  check_cuda(output, "all_gather output");
  check_counts(counts, size_, "all_gather");
  if (input.scalar_type() != output.scalar_type())
    throw std::runtime_error("NCCL backend: all_gather input and output dtypes differ");
  ++stats_.calls;
  stats_.all_gather_bytes += static_cast<int64_t>(output.nbytes());
  order_after_current(*state_);
  const bool equal = std::all_of(counts.begin(), counts.end(), [&](int64_t c) { return c == counts[0]; });
  if (equal) {
    LETHE_NCCL_CHECK(ncclAllGather(input.data_ptr(), output.data_ptr(), counts[0],
                                   nccl_type(output.scalar_type()), state_->comm, state_->stream),
                     rank_);
  } else {
    const size_t elem = output.element_size();
    int64_t offset = 0;
    LETHE_NCCL_CHECK(ncclGroupStart(), rank_);
    for (int r = 0; r < size_; ++r) {
      char* recv = static_cast<char*>(output.data_ptr()) + offset * elem;
      const ncclResult_t rc = ncclBroadcast(r == rank_ ? input.data_ptr() : recv, recv, counts[r],
                                            nccl_type(output.scalar_type()), r, state_->comm, state_->stream);
      if (rc != ncclSuccess && rc != ncclInProgress) {
        ncclGroupEnd();
        LETHE_NCCL_CHECK(rc, rank_);
      }
      offset += counts[r];
    }
    LETHE_NCCL_CHECK(ncclGroupEnd(), rank_);
  }
  return std::make_unique<NcclWork>(*state_, stats_, torch::Tensor(), torch::Tensor(),
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
