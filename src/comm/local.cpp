#include "comm/local.h"

#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <thread>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace lethe::comm {

struct LocalShared {
  explicit LocalShared(int n) : slots(n) {}
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  bool aborted = false;
  std::string abort_message;
  std::vector<torch::Tensor> slots;

  // A reusable barrier that gives up when the group is aborted.
  void wait_all(int size) {
    std::unique_lock lock(mu);
    if (aborted) throw LocalAbort(abort_message);
    const int64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen || aborted; });
    if (aborted) throw LocalAbort(abort_message);
  }
};

namespace {
class DoneWork : public Work {
 public:
  void wait() override {}
};

torch::Tensor reduce_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf ? t.to(torch::kFloat) : t;
}
}  // namespace

LocalCommunicator::LocalCommunicator(std::shared_ptr<LocalShared> shared, int rank, int size)
    : shared_(std::move(shared)), rank_(rank), size_(size) {}

void LocalCommunicator::exchange(const torch::Tensor& t,
                                 const std::function<void(const std::vector<torch::Tensor>&)>& fn) {
  ++stats_.calls;
  shared_->slots[rank_] = t;
  shared_->wait_all(size_);
  fn(shared_->slots);
  shared_->wait_all(size_);
}

void LocalCommunicator::barrier() {
  ++stats_.calls;
  shared_->wait_all(size_);
}

std::unique_ptr<Work> LocalCommunicator::all_reduce_async(torch::Tensor t, ReduceOp op) {
  TORCH_CHECK(t.is_contiguous(), "all_reduce: tensor must be contiguous");
  stats_.all_reduce_bytes += static_cast<int64_t>(t.nbytes());
  torch::Tensor result;
  exchange(t, [&](const std::vector<torch::Tensor>& all) {
    result = reduce_dtype(all[0]).clone();  // rank order: the same sum on every rank
    for (size_t r = 1; r < all.size(); ++r) {
      if (op == ReduceOp::kSum)
        result.add_(reduce_dtype(all[r]));
      else
        result = torch::maximum(result, reduce_dtype(all[r]));
    }
  });
  t.copy_(result);
  return std::make_unique<DoneWork>();
}

std::unique_ptr<Work> LocalCommunicator::broadcast_async(torch::Tensor t, int root) {
  stats_.broadcast_bytes += static_cast<int64_t>(t.nbytes());
  torch::Tensor copy;
  exchange(t, [&](const std::vector<torch::Tensor>& all) {
    if (rank_ != root) copy = all[root].clone();
  });
  if (rank_ != root) t.copy_(copy);
  return std::make_unique<DoneWork>();
}

std::unique_ptr<Work> LocalCommunicator::reduce_scatter_async(torch::Tensor input, torch::Tensor output,
                                                              std::vector<int64_t> counts) {
  TORCH_CHECK(static_cast<int>(counts.size()) == size_, "reduce_scatter: one count per rank");
  int64_t begin = 0;
  for (int r = 0; r < rank_; ++r) begin += counts[r];
  stats_.reduce_scatter_bytes += static_cast<int64_t>(input.nbytes());
  torch::Tensor result;
  exchange(input, [&](const std::vector<torch::Tensor>& all) {
    result = reduce_dtype(all[0].narrow(0, begin, counts[rank_])).clone();
    for (size_t r = 1; r < all.size(); ++r) result.add_(reduce_dtype(all[r].narrow(0, begin, counts[rank_])));
  });
  output.copy_(result);
  return std::make_unique<DoneWork>();
}

std::unique_ptr<Work> LocalCommunicator::all_gather_async(torch::Tensor input, torch::Tensor output,
                                                          std::vector<int64_t> counts) {
  TORCH_CHECK(static_cast<int>(counts.size()) == size_, "all_gather: one count per rank");
  stats_.all_gather_bytes += static_cast<int64_t>(output.nbytes());
  std::vector<torch::Tensor> pieces;
  exchange(input.clone(), [&](const std::vector<torch::Tensor>& all) {
    for (const auto& t : all) pieces.push_back(t);
  });
  output.copy_(torch::cat(pieces));
  return std::make_unique<DoneWork>();
}

void LocalCommunicator::abort(const std::string& message, int code) {
  if (size_ == 1) {
    std::cerr << message << "\n";
    std::exit(code);
  }
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->aborted) shared_->abort_message = message;
    shared_->aborted = true;
  }
  shared_->cv.notify_all();
  throw LocalAbort(message);
}

std::unique_ptr<Communicator> make_self() {
  return std::make_unique<LocalCommunicator>(std::make_shared<LocalShared>(1), 0, 1);
}

void run_local(int size, const std::function<void(Communicator&)>& fn) {
  auto shared = std::make_shared<LocalShared>(size);
  std::vector<std::exception_ptr> errors(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      LocalCommunicator comm(shared, r, size);
      try {
        fn(comm);
      } catch (const LocalAbort&) {
        errors[r] = std::current_exception();
      } catch (const std::exception& e) {
        errors[r] = std::current_exception();
        // Wake the others, who may be waiting in a collective for this rank.
        std::lock_guard lock(shared->mu);
        if (!shared->aborted) shared->abort_message = fmt::format("rank {}: {}", r, e.what());
        shared->aborted = true;
        shared->cv.notify_all();
      }
    });
  }
  for (auto& t : threads) t.join();
  // The root cause first: a rank's own error outranks the LocalAbort the others saw.
  for (int r = 0; r < size; ++r) {
    if (!errors[r]) continue;
    try {
      std::rethrow_exception(errors[r]);
    } catch (const LocalAbort&) {
    } catch (...) {
      throw;
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace lethe::comm
