#include <cstdlib>

#include "comm/communicator.h"
#include "comm/local.h"
#include "comm/mpi.h"

namespace lethe::comm {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(var)) return true;
  return false;
}

std::unique_ptr<Communicator> make_world() {
  if (launched_by_mpi()) return std::make_unique<MpiCommunicator>();
  return make_self();
}

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
