// The child side of the NCCL steps (device_check_nccl.cpp starts them): one rank of a two-process NCCL group
// on GPU 0, bootstrapped through files instead of MPI. In "collectives" mode it checks every collective of
// comm/nccl.cpp against values computed by hand and ZeRO-2 against one CPU process; in "death" mode it plays
// its part in rank_death. It reports to the parent through DIR/result.RANK (save_lines).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include "comm/local.h"
#include "comm/nccl.h"
#include "device_check.h"

namespace lethe::device_check {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kFileWait = 120;  // seconds a rank waits for a peer's bootstrap file

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

torch::TensorOptions on_gpu(torch::ScalarType t) {
  return torch::TensorOptions().dtype(t).device(torch::kCUDA, 0);
}

// --- bootstrap ---------------------------------------------------------------------------------------------

class DoneWork : public comm::Work {
 public:
  void wait() override {}
};

// The host communicator NcclCommunicator needs, without MPI: the root writes a broadcast to a file (under a
// temporary name, then renamed, so a reader never sees half of it) that the others poll for; a barrier is one
// file per rank. Files are numbered by call, so every rank must call in the same order, as with any
// communicator. NcclCommunicator needs nothing else: the other collectives throw.
class FileBootstrap : public comm::Communicator {
 public:
  FileBootstrap(fs::path dir, int rank, int size) : dir_(std::move(dir)), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "file"; }

  void barrier() override {
    const int64_t call = calls_++;
    write_file(dir_ / fmt::format("barrier.{}.{}", call, rank_), "");
    for (int r = 0; r < size_; ++r) wait_for(dir_ / fmt::format("barrier.{}.{}", call, r));
  }
  std::unique_ptr<comm::Work> broadcast_async(torch::Tensor t, int root) override {
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(),
                "FileBootstrap broadcasts contiguous CPU tensors only");
    const fs::path path = dir_ / fmt::format("broadcast.{}", calls_++);
    const auto bytes = static_cast<size_t>(t.nbytes());
    if (rank_ == root) {
      write_file(path, std::string(static_cast<const char*>(t.data_ptr()), bytes));
      return std::make_unique<DoneWork>();
    }
    wait_for(path);
    std::ifstream in(path, std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() != bytes)
      throw std::runtime_error(
          fmt::format("rank {}: {} holds {} bytes, expected {}", rank_, path.string(), data.size(), bytes));
    std::memcpy(t.data_ptr(), data.data(), bytes);
    return std::make_unique<DoneWork>();
  }
  std::unique_ptr<comm::Work> all_reduce_async(torch::Tensor, comm::ReduceOp) override {
    unsupported("all_reduce");
  }
  std::unique_ptr<comm::Work> reduce_scatter_async(torch::Tensor, torch::Tensor,
                                                   std::vector<int64_t>) override {
    unsupported("reduce_scatter");
  }
  std::unique_ptr<comm::Work> all_gather_async(torch::Tensor, torch::Tensor, std::vector<int64_t>) override {
    unsupported("all_gather");
  }
  // NcclCommunicator's watchdog ends the job through here (after ncclCommAbort): print, exit, nothing else.
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(code);
  }

 private:
  [[noreturn]] static void unsupported(const char* what) {
    throw std::runtime_error(fmt::format("FileBootstrap: no {} (broadcast and barrier only)", what));
  }
  static void write_file(const fs::path& path, const std::string& data) {
    const fs::path tmp = path.string() + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    fs::rename(tmp, path);
  }
  void wait_for(const fs::path& path) const {
    const auto t0 = Clock::now();
    while (!fs::exists(path)) {
      if (seconds_since(t0) > kFileWait)
        throw std::runtime_error(fmt::format("rank {}: no {} after {} s: the other rank never got there",
                                             rank_, path.string(), kFileWait));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  fs::path dir_;
  int rank_, size_;
  int64_t calls_ = 0;
};

// --- collectives -------------------------------------------------------------------------------------------

// [n] int64 on the CPU: (offset + j) mod m + 1. Rank s contributes (s + 1) · pattern, so every value and
// every sum over two ranks is a small integer, exact in bf16 too (m = 7: at most 3 · 7 = 21).
torch::Tensor pattern(int64_t n, int64_t m, int64_t offset = 0) {
  return torch::arange(offset, offset + n, torch::kLong).remainder(m) + 1;
}

void expect_equal(Result& r, const std::string& key, const torch::Tensor& got, const torch::Tensor& want) {
  r.at_most(key + "_max_abs_diff", max_abs_diff(got, want), 0);
}

void check_all_reduce(Result& r, comm::Communicator& c) {
  const int64_t n = 1000, sum_of_ranks = c.size() * (c.size() + 1) / 2;
  for (const auto dtype : {torch::kFloat, torch::kBFloat16, torch::kLong}) {
    // int64 adds 2^40 per rank: beyond fp32's exact integers, so a float round trip would show.
    const int64_t base = dtype == torch::kLong ? int64_t{1} << 40 : 0;
    torch::Tensor t = ((c.rank() + 1) * pattern(n, 7) + base).to(on_gpu(dtype));
    c.all_reduce(t);
    expect_equal(r, fmt::format("all_reduce_{}", c10::toString(dtype)), t,
                 sum_of_ranks * pattern(n, 7) + c.size() * base);
  }
  torch::Tensor t = ((c.rank() + 1) * pattern(n, 1000)).to(on_gpu(torch::kFloat));
  c.all_reduce(t, comm::ReduceOp::kMax);
  expect_equal(r, "all_reduce_max", t, c.size() * pattern(n, 1000));
  // Two in flight at once, waited in reverse order (the engine keeps two buckets in flight).
  torch::Tensor a = ((c.rank() + 1) * pattern(n, 7)).to(on_gpu(torch::kFloat)), b = a * 2;
  auto wa = c.all_reduce_async(a, comm::ReduceOp::kSum), wb = c.all_reduce_async(b, comm::ReduceOp::kSum);
  wb->wait();
  wa->wait();
  expect_equal(r, "all_reduce_two_in_flight", torch::cat({a, b}),
               torch::cat({sum_of_ranks * pattern(n, 7), 2 * sum_of_ranks * pattern(n, 7)}));
}

void check_broadcast(Result& r, comm::Communicator& c) {
  const int root = c.size() - 1;
  torch::Tensor t = (pattern(1000, 100) + 1000 * c.rank()).to(on_gpu(torch::kFloat));
  c.broadcast(t, root);
  expect_equal(r, "broadcast_from_last", t, pattern(1000, 100) + 1000 * root);
}

int64_t offset_of(const std::vector<int64_t>& counts, int rank) {
  return std::accumulate(counts.begin(), counts.begin() + rank, int64_t{0});
}

// A [count] view at the start of a [count + 1] buffer filled with -1, as the engine's pieces are views into
// larger buffers (so a piece of 0 elements still has an address); the element after it must stay -1.
std::pair<torch::Tensor, torch::Tensor> guarded(int64_t count, torch::ScalarType dtype) {
  const torch::Tensor buffer = torch::full({count + 1}, -1, on_gpu(dtype));
  return {buffer.narrow(0, 0, count), buffer.narrow(0, count, 1)};
}

void check_reduce_scatter(Result& r, comm::Communicator& c, const std::vector<int64_t>& counts,
                          torch::ScalarType in_type, const std::string& key) {
  const int64_t total = offset_of(counts, c.size()), begin = offset_of(counts, c.rank()),
                mine = counts[c.rank()];
  const torch::Tensor in = ((c.rank() + 1) * pattern(total, 7)).to(on_gpu(in_type));
  const auto [out, guard] = guarded(mine, torch::kFloat);
  c.reduce_scatter(in, out, counts);
  expect_equal(r, "reduce_scatter_" + key, out, c.size() * (c.size() + 1) / 2 * pattern(mine, 7, begin));
  expect_equal(r, "reduce_scatter_" + key + "_guard", guard, torch::full({1}, -1));
}

// Rank s's piece: (s + 1) · 16 + (k mod 16), at most 47 for 2 ranks: exact in bf16.
void check_all_gather(Result& r, comm::Communicator& c, const std::vector<int64_t>& counts,
                      torch::ScalarType dtype, bool in_place, const std::string& key) {
  std::vector<torch::Tensor> pieces;
  for (int s = 0; s < c.size(); ++s) pieces.push_back((s + 1) * 16 + pattern(counts[s], 16) - 1);
  const torch::Tensor want = torch::cat(pieces);
  const int64_t begin = offset_of(counts, c.rank()), mine = counts[c.rank()];
  const auto [out, guard] = guarded(want.numel(), dtype);
  torch::Tensor in = in_place ? out.narrow(0, begin, mine) : guarded(mine, dtype).first;
  in.copy_(pieces[c.rank()]);
  c.all_gather(in, out, counts);
  expect_equal(r, "all_gather_" + key, out, want);
  expect_equal(r, "all_gather_" + key + "_guard", guard, torch::full({1}, -1));
}

// Equal pieces take ncclReduceScatter / ncclAllGather; uneven ones (and a rank with an empty piece, which a
// bucket inside one rank's slice gives) one ncclReduce / ncclBroadcast per owner in a group. bf16 input is
// reduced natively in bf16 into an fp32 output (zero.reduce_bf16's buckets into the fp32 owned slice; the
// sums here are exact in bf16); all-gathers run in place as the engine's parameter gather does.
void check_collectives(Result& r, comm::Communicator& c) {
  check_all_reduce(r, c);
  check_broadcast(r, c);
  const std::vector<int64_t> equal = {64, 64}, uneven = {37, 91}, empty = {50, 0};
  check_reduce_scatter(r, c, equal, torch::kFloat, "equal_fp32");
  check_reduce_scatter(r, c, uneven, torch::kFloat, "uneven_fp32");
  check_reduce_scatter(r, c, empty, torch::kFloat, "empty_piece_fp32");
  check_reduce_scatter(r, c, equal, torch::kBFloat16, "equal_bf16_to_fp32");
  check_reduce_scatter(r, c, uneven, torch::kBFloat16, "uneven_bf16_to_fp32");
  check_all_gather(r, c, equal, torch::kFloat, false, "equal_fp32");
  check_all_gather(r, c, uneven, torch::kFloat, false, "uneven_fp32");
  check_all_gather(r, c, empty, torch::kFloat, false, "empty_piece_fp32");
  check_all_gather(r, c, equal, torch::kBFloat16, true, "equal_bf16_in_place");
  check_all_gather(r, c, uneven, torch::kBFloat16, true, "uneven_bf16_in_place");
}

// ZeRO-2 over NCCL, each rank on its share of the global batch, against one CPU process on all of it. Also
// the last step's traffic: CommStats must show exactly what the layout predicts.
void check_zero2(Result& r, comm::Communicator& nccl) {
  const int64_t rows = kZeroBatch / nccl.size();
  const ZeroRun got = train_tiny(nccl, torch::Device(torch::kCUDA, 0), 2, nccl.rank() * rows, rows);
  auto self = comm::make_self();
  const ZeroRun want = train_tiny(*self, torch::kCPU, 0, 0, kZeroBatch);
  compare_zero(r, "zero2_", got, want);
  r.at_most("zero2_reduce_bytes_off", std::abs(got.last_step.reduce_scatter_bytes - got.predicted_reduce), 0);
  r.at_most("zero2_gather_bytes_off", std::abs(got.last_step.all_gather_bytes - got.predicted_gather), 0);
}

// --- rank death --------------------------------------------------------------------------------------------

// Both ranks pass a barrier; rank 1 then exits at once (no NCCL teardown, like a crashed process) and rank 0
// starts an all-reduce that cannot complete. Only the communicator's watchdog can end rank 0: it aborts the
// communicator and calls FileBootstrap::abort, exit code 1.
int death_rank(comm::Communicator& nccl, comm::Communicator& boot) {
  boot.barrier();
  if (boot.rank() == 1) std::_Exit(kDeadRankCode);
  torch::Tensor t = torch::ones({1 << 20}, on_gpu(torch::kFloat));
  nccl.all_reduce(t);
  try {
    (void)t.sum().item<float>();  // blocks the host until the collective ends, which it cannot
  } catch (const std::exception&) {
  }
  // Reached only if the aborted collective let the host go before the watchdog's exit: give it time.
  std::this_thread::sleep_for(std::chrono::seconds(30));
  std::fprintf(stderr, "rank 0: an all-reduce with a dead peer returned and nothing ended this process\n");
  return kSurvivedCode;
}

std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\t' || ch == '\n') ch = ' ';
  return s;
}

}  // namespace

void save_lines(const Result& r, const std::string& path) {
  std::ofstream out(path);
  for (const auto& [k, v] : r.numbers) out << "number\t" << k << "\t" << fmt::format("{}", v) << "\n";
  for (const auto& [k, v] : r.notes) out << "note\t" << k << "\t" << one_line(v) << "\n";
  for (const std::string& e : r.errors) out << "error\t\t" << one_line(e) << "\n";
}

void load_lines(Result& into, const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string kind = line.substr(0, a), key = prefix + line.substr(a + 1, b - a - 1),
                      value = line.substr(b + 1);
    if (kind == "number") into.number(key, std::strtod(value.c_str(), nullptr));
    if (kind == "note") into.note(key, value);
    if (kind == "error") into.fail(prefix + value);
  }
}

int run_rank(int rank, int world, const std::string& store, const std::string& mode) {
  FileBootstrap boot(store, rank, world);
  Result r;
  r.name = fmt::format("rank{}", rank);
  try {
    c10::cuda::set_device(0);
    comm::NcclCommunicator nccl(boot, 0);
    if (mode == "death") return death_rank(nccl, boot);
    check_collectives(r, nccl);
    check_zero2(r, nccl);
    torch::cuda::synchronize();
    boot.barrier();  // both ranks done before either tears its communicator down
  } catch (const c10::Error& e) {
    r.fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    r.fail(e.what());
  }
  save_lines(r, (fs::path(store) / fmt::format("result.{}", rank)).string());
  return r.ok ? 0 : 1;
}

}  // namespace lethe::device_check
