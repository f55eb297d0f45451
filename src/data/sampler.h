// The distributed, resumable sampler. The sequence of global batches depends only on the seed, the dataset
// size and the global batch size — never on the number of ranks — so a run gives the same updates at any
// world size and can resume on a different one. Each epoch is a fresh permutation (Fisher-Yates driven by
// SplitMix64 seeded with seed and epoch; tests/reference/zero_reference.py replays it), the last incomplete
// batch is dropped. A rank takes a contiguous block of every global batch and cuts it into micro-batches.
#pragma once

#include <cstdint>
#include <vector>

namespace lethe::data {

struct SamplerState {
  int64_t epoch = 0;
  int64_t batch = 0;  // global batches already taken in this epoch
  bool operator==(const SamplerState&) const = default;
};

class GlobalBatchSampler {
 public:
  GlobalBatchSampler(int64_t num_samples, int64_t global_batch, uint64_t seed, bool shuffle = true);
  int64_t batches_per_epoch() const { return num_samples_ / global_batch_; }
  // Sample indices of the next global batch; moves to the next epoch when this one is used up.
  std::vector<int64_t> next();
  const SamplerState& state() const { return state_; }
  void set_state(const SamplerState& s);
  // The permutation of epoch `epoch` (exposed for tests).
  std::vector<int64_t> permutation(int64_t epoch) const;

 private:
  int64_t num_samples_, global_batch_;
  uint64_t seed_;
  bool shuffle_;
  SamplerState state_;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
};

// Rank `rank`'s block of a global batch: elements [rank·G/N, (rank+1)·G/N). G must divide by N.
std::vector<int64_t> rank_part(const std::vector<int64_t>& batch, int rank, int world);

}  // namespace lethe::data
