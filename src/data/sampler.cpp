#include "data/sampler.h"

#include <stdexcept>

namespace lethe::data {
namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

GlobalBatchSampler::GlobalBatchSampler(int64_t num_samples, int64_t global_batch, uint64_t seed, bool shuffle)
    : num_samples_(num_samples), global_batch_(global_batch), seed_(seed), shuffle_(shuffle) {
  if (global_batch <= 0 || num_samples < global_batch)
    throw std::invalid_argument("GlobalBatchSampler: the dataset is smaller than one global batch");
}

std::vector<int64_t> GlobalBatchSampler::permutation(int64_t epoch) const {
  std::vector<int64_t> p(num_samples_);
  for (int64_t i = 0; i < num_samples_; ++i) p[i] = i;
  if (!shuffle_) return p;
  uint64_t state = seed_ ^ (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ULL);
  for (int64_t i = num_samples_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<int64_t> GlobalBatchSampler::next() {
  if (state_.batch >= batches_per_epoch()) state_ = {state_.epoch + 1, 0};
  if (perm_epoch_ != state_.epoch) {
    perm_ = permutation(state_.epoch);
    perm_epoch_ = state_.epoch;
  }
  const auto begin = perm_.begin() + state_.batch * global_batch_;
  ++state_.batch;
  return {begin, begin + global_batch_};
}

void GlobalBatchSampler::set_state(const SamplerState& s) {
  if (s.epoch < 0 || s.batch < 0 || s.batch > batches_per_epoch())
    throw std::invalid_argument("GlobalBatchSampler: sampler state out of range for this dataset");
  state_ = s;
}

std::vector<int64_t> rank_part(const std::vector<int64_t>& batch, int rank, int world) {
  const auto g = static_cast<int64_t>(batch.size());
  if (g % world != 0)
    throw std::invalid_argument("rank_part: global batch does not divide by the world size");
  const int64_t per = g / world;
  return {batch.begin() + rank * per, batch.begin() + (rank + 1) * per};
}

}  // namespace lethe::data
