// Where every parameter lives in ZeRO's flat buffer, and which part of it each rank owns. A pure value type
// (no tensors, no communicator), so it is unit-tested on its own and stored in checkpoints.
//
// Parameters are laid out back to back in model order (tied weights appear once: the caller de-duplicates).
// The total is padded to a multiple of world_size·align elements and cut into world_size equal contiguous
// slices; slice boundaries ignore parameter boundaries, so a tensor may straddle two ranks, and the padding
// sits at the end of the last slice(s). With align = 16 every slice starts on a 64-byte boundary for fp32.
//
//   flat:   | wte ........ | wpe ... | h.0.ln_1.weight | ... | ln_f.bias | pad |
//   ranks:  |<-- rank 0 -->|<--- rank 1 --->|<--- rank 2 --->|  (slice_numel each)
//
// Buckets group consecutive whole parameters (at least bucket_numel elements, or one larger parameter);
// communication happens per bucket, each rank sending or receiving its own part of it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::zero {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
  bool operator==(const TensorSpec&) const = default;
};

// Half-open range of flat elements.
struct Span {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end > begin ? end - begin : 0; }
  Span intersect(Span o) const;
  bool operator==(const Span&) const = default;
};

// The part of tensor `tensor` that falls into a flat range: elements [tensor_offset, tensor_offset + size)
// of the flattened tensor sit at flat[flat_begin, flat_begin + size).
struct Piece {
  size_t tensor;
  int64_t tensor_offset, flat_begin, size;
};

struct Bucket {
  Span span;                                // flat range, parameter-aligned (the last one includes padding)
  size_t first_tensor = 0, end_tensor = 0;  // tensors [first, end)
};

class FlatLayout {
 public:
  FlatLayout() = default;
  FlatLayout(std::vector<TensorSpec> tensors, int world_size, int64_t align = 16);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int64_t offset(size_t tensor) const { return offsets_[tensor]; }
  int world_size() const { return world_size_; }
  int64_t align() const { return align_; }
  int64_t numel() const { return numel_; }                // real elements Ψ
  int64_t padded_numel() const { return padded_numel_; }  // world_size · slice_numel
  int64_t slice_numel() const { return padded_numel_ / world_size_; }
  Span slice(int rank) const;
  // Padding elements inside rank's slice (non-zero only on the last rank(s)).
  int64_t padding(int rank) const;

  // Every piece of a tensor inside `s`, in flat order.
  std::vector<Piece> pieces(Span s) const;
  // counts[r] = elements of `s` inside slice(r): the per-rank counts of one bucket's collective.
  std::vector<int64_t> owner_counts(Span s) const;
  std::vector<Bucket> buckets(int64_t bucket_numel) const;

  // Same tensors (names and shapes) in the same order: the only condition for resuming one layout's
  // checkpoint under another world size. Returns the first difference, or "" when compatible.
  std::string difference(const FlatLayout& other) const;

 private:
  std::vector<TensorSpec> tensors_;
  std::vector<int64_t> offsets_;
  int world_size_ = 1;
  int64_t align_ = 16, numel_ = 0, padded_numel_ = 0;
};

}  // namespace lethe::zero
