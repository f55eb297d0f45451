#include "zero/flat_layout.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lethe::zero {

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Span Span::intersect(Span o) const {
  Span s{std::max(begin, o.begin), std::min(end, o.end)};
  if (s.end < s.begin) s.end = s.begin;
  return s;
}

FlatLayout::FlatLayout(std::vector<TensorSpec> tensors, int world_size, int64_t align)
    : tensors_(std::move(tensors)), world_size_(world_size), align_(align) {
  if (world_size < 1 || align < 1)
    throw std::invalid_argument("FlatLayout: world_size and align must be >= 1");
  for (const TensorSpec& t : tensors_) {
    offsets_.push_back(numel_);
    numel_ += t.numel();
  }
  const int64_t unit = static_cast<int64_t>(world_size_) * align_;
  padded_numel_ = std::max<int64_t>(unit, (numel_ + unit - 1) / unit * unit);
}

Span FlatLayout::slice(int rank) const {
  const int64_t s = slice_numel();
  return {rank * s, (rank + 1) * s};
}

int64_t FlatLayout::padding(int rank) const {
  const Span sl = slice(rank);
  return sl.size() - sl.intersect({0, numel_}).size();
}

std::vector<Piece> FlatLayout::pieces(Span s) const {
  std::vector<Piece> out;
  // First tensor whose end is past s.begin.
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), s.begin);
  size_t i = it == offsets_.begin() ? 0 : static_cast<size_t>(it - offsets_.begin() - 1);
  for (; i < tensors_.size() && offsets_[i] < s.end; ++i) {
    const Span t{offsets_[i], offsets_[i] + tensors_[i].numel()};
    const Span x = t.intersect(s);
    if (x.size() == 0) continue;
    out.push_back({i, x.begin - t.begin, x.begin, x.size()});
  }
  return out;
}

std::vector<int64_t> FlatLayout::owner_counts(Span s) const {
  std::vector<int64_t> counts(world_size_);
  for (int r = 0; r < world_size_; ++r) counts[r] = slice(r).intersect(s).size();
  return counts;
}

std::vector<Bucket> FlatLayout::buckets(int64_t bucket_numel) const {
  std::vector<Bucket> out;
  size_t first = 0;
  int64_t filled = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    filled += tensors_[i].numel();
    if (filled >= bucket_numel || i + 1 == tensors_.size()) {
      const int64_t end = i + 1 == tensors_.size() ? padded_numel_ : offsets_[i] + tensors_[i].numel();
      out.push_back({{offsets_[first], end}, first, i + 1});
      first = i + 1;
      filled = 0;
    }
  }
  if (out.empty()) out.push_back({{0, padded_numel_}, 0, 0});
  return out;
}

std::string FlatLayout::difference(const FlatLayout& other) const {
  const size_t n = std::min(tensors_.size(), other.tensors_.size());
  for (size_t i = 0; i < n; ++i) {
    const TensorSpec &a = tensors_[i], &b = other.tensors_[i];
    if (a.name != b.name)
      return fmt::format("tensor #{} is '{}' here but '{}' in the other layout", i, a.name, b.name);
    if (a.shape != b.shape)
      return fmt::format("tensor '{}' has shape [{}] here but [{}] in the other layout", a.name,
                         fmt::join(a.shape, ", "), fmt::join(b.shape, ", "));
  }
  if (tensors_.size() != other.tensors_.size())
    return fmt::format("{} tensors here but {} in the other layout", tensors_.size(), other.tensors_.size());
  return "";
}

}  // namespace lethe::zero
