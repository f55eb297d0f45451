// The communicator's non-virtual helpers: here, not in world.cpp, so code built without MPI (the GPU device
// check, tests/gpu) can link them.
#include "comm/communicator.h"

namespace lethe::comm {

std::vector<int64_t> equal_counts(int64_t n, int size) {
  TORCH_CHECK(n % size == 0, "equal_counts: ", n, " elements do not split into ", size, " equal parts");
  return std::vector<int64_t>(size, n / size);
}

int64_t Communicator::all_reduce_int(int64_t v, ReduceOp op) {
  torch::Tensor t = torch::full({1}, v, torch::kLong);
  all_reduce(t, op);
  return t.item<int64_t>();
}

double Communicator::all_reduce_double(double v, ReduceOp op) {
  torch::Tensor t = torch::full({1}, v, torch::kDouble);
  all_reduce(t, op);
  return t.item<double>();
}

}  // namespace lethe::comm
