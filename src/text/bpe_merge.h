// The BPE merge loop (internal to the tokenizer): a pre-tokenised piece's bytes in, token ids out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "text/bpe_vocab.h"

namespace lethe::text {

class BpeMerger {
 public:
  // Pieces up to this many bytes use a quadratic scan on stack arrays, longer ones a heap.
  static constexpr std::size_t kShortPiece = 128;

  BpeMerger(const std::vector<MergeRule>& rules, const std::array<int32_t, 256>& byte_ids);

  // Appends the ids of piece after applying the merge rules, lowest rank first and the leftmost of equal
  // pairs first: the order of OpenAI's encoder.py and HF's BPE model. The piece's bytes are the initial
  // symbols (byte-level BPE).
  void merge(std::string_view piece, std::vector<int32_t>& out) const;
  // The same with given initial symbols (character-level BPE: one id per character, byte fallback ids).
  void merge(std::span<const int32_t> symbols, std::vector<int32_t>& out) const;

 private:
  // Open-addressing map (left id, right id) -> packed (rank << 32 | merged id). Packing lets the merge loop
  // find the best pair with one integer comparison, and unknown pairs (kNone) sort after every rule.
  static constexpr uint64_t kNone = ~0ULL;
  struct Slot {
    uint64_t key = kNone;  // ids are < 2^31, so no real key is all ones
    uint64_t value = kNone;
  };
  static uint64_t key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
  }
  std::size_t slot_of(uint64_t k) const {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ULL) >> 40) & mask_;
  }
  uint64_t find(int32_t left, int32_t right) const;
  // symbol(i) gives the i-th initial id of n.
  template <typename SymbolAt>
  void merge_short(std::size_t n, SymbolAt symbol, std::vector<int32_t>& out) const;
  template <typename SymbolAt>
  void merge_long(std::size_t n, SymbolAt symbol, std::vector<int32_t>& out) const;

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::array<int32_t, 256> byte_ids_;
};

}  // namespace lethe::text
