#include "text/bpe_merge.h"

#include <cstring>
#include <functional>
#include <queue>

namespace lethe::text {

BpeMerger::BpeMerger(const std::vector<MergeRule>& rules, const std::array<int32_t, 256>& byte_ids)
    : byte_ids_(byte_ids) {
  std::size_t cap = 16;
  while (cap < 2 * rules.size()) cap *= 2;  // load factor <= 1/2 keeps probe chains short
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (std::size_t rank = 0; rank < rules.size(); ++rank) {
    const MergeRule& r = rules[rank];
    std::size_t i = slot_of(key(r.left, r.right));
    while (slots_[i].key != kNone) i = (i + 1) & mask_;
    slots_[i] = {key(r.left, r.right), (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(r.merged)};
  }
}

uint64_t BpeMerger::find(int32_t left, int32_t right) const {
  const uint64_t k = key(left, right);
  for (std::size_t i = slot_of(k);; i = (i + 1) & mask_) {
    if (slots_[i].key == k) return slots_[i].value;
    if (slots_[i].key == kNone) return kNone;
  }
}

void BpeMerger::merge(std::string_view piece, std::vector<int32_t>& out) const {
  const auto byte = [&](std::size_t i) { return byte_ids_[static_cast<unsigned char>(piece[i])]; };
  if (piece.size() <= kShortPiece) {
    merge_short(piece.size(), byte, out);
  } else {
    merge_long(piece.size(), byte, out);
  }
}

void BpeMerger::merge(std::span<const int32_t> symbols, std::vector<int32_t>& out) const {
  const auto at = [&](std::size_t i) { return symbols[i]; };
  if (symbols.size() <= kShortPiece) {
    merge_short(symbols.size(), at, out);
  } else {
    merge_long(symbols.size(), at, out);
  }
}

// Repeatedly merges the lowest-ranked adjacent pair, leftmost first, on small stack arrays.
template <typename SymbolAt>
void BpeMerger::merge_short(std::size_t n, SymbolAt symbol, std::vector<int32_t>& out) const {
  std::array<int32_t, kShortPiece> id;
  std::array<uint64_t, kShortPiece> pair;  // pair[i]: packed rule for (id[i], id[i + 1])
  if (n == 0) return;
  for (std::size_t i = 0; i < n; ++i) id[i] = symbol(i);
  for (std::size_t i = 0; i + 1 < n; ++i) pair[i] = find(id[i], id[i + 1]);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i)
      if (pair[i] < pair[best]) best = i;
    if (pair[best] == kNone) break;
    id[best] = static_cast<int32_t>(pair[best] & 0xFFFFFFFFU);
    // data() + offset, not &id[offset]: best + 2 may be one past the end of a full array.
    std::memmove(id.data() + best + 1, id.data() + best + 2, (n - best - 2) * sizeof(int32_t));
    if (best + 3 <= n)
      std::memmove(pair.data() + best + 1, pair.data() + best + 2, (n - best - 3) * sizeof(uint64_t));
    --n;
    if (best > 0) pair[best - 1] = find(id[best - 1], id[best]);
    if (best + 1 < n) pair[best] = find(id[best], id[best + 1]);
  }
  out.insert(out.end(), id.begin(), id.begin() + static_cast<std::ptrdiff_t>(n));
}

// Same merge order as merge_short in O(n log n): a linked list of symbols and a heap of candidate pairs
// ordered by (rank, position), with stale candidates skipped when popped (as in HF's word.rs).
template <typename SymbolAt>
void BpeMerger::merge_long(std::size_t count, SymbolAt symbol, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id, prev, next;  // id -1: merged into its left neighbour
  };
  struct Candidate {
    uint64_t rule;
    int32_t pos, left, right;
    bool operator>(const Candidate& o) const { return rule != o.rule ? rule > o.rule : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(count);
  std::vector<Symbol> sym(static_cast<std::size_t>(n));
  for (int32_t i = 0; i < n; ++i)
    sym[i] = {symbol(static_cast<std::size_t>(i)), i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto consider = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (next < 0) return;
    const uint64_t rule = find(sym[pos].id, sym[next].id);
    if (rule != kNone) heap.push({rule, pos, sym[pos].id, sym[next].id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& s = sym[c.pos];
    if (s.id != c.left || s.next < 0 || sym[s.next].id != c.right) continue;
    const int32_t right = s.next;
    s.id = static_cast<int32_t>(c.rule & 0xFFFFFFFFU);
    s.next = sym[right].next;
    if (s.next >= 0) sym[s.next].prev = c.pos;
    sym[right].id = -1;
    if (s.prev >= 0) consider(s.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);  // symbol 0 is never merged away
}

}  // namespace lethe::text
