// FlatLayout: offsets, padding, slices that cut through tensors, per-rank counts and buckets.
#include "zero/flat_layout.h"

#include <numeric>

#include <gtest/gtest.h>

namespace lethe::zero {
namespace {

FlatLayout three_tensors(int world) {
  // 10 + 6 + 7 = 23 elements.
  return FlatLayout({{"a", {2, 5}}, {"b", {6}}, {"c", {7}}}, world, /*align=*/4);
}

TEST(FlatLayout, OffsetsPaddingAndSlices) {
  const FlatLayout l = three_tensors(3);
  EXPECT_EQ(l.numel(), 23);
  EXPECT_EQ(l.offset(0), 0);
  EXPECT_EQ(l.offset(1), 10);
  EXPECT_EQ(l.offset(2), 16);
  EXPECT_EQ(l.padded_numel(), 24);  // multiple of 3 * 4
  EXPECT_EQ(l.slice_numel(), 8);
  EXPECT_EQ(l.slice(1), (Span{8, 16}));
  EXPECT_EQ(l.padding(0), 0);
  EXPECT_EQ(l.padding(2), 1);
  int64_t total = 0;
  for (int r = 0; r < 3; ++r) total += l.slice(r).size();
  EXPECT_EQ(total, l.padded_numel());
}

TEST(FlatLayout, PiecesStraddleRanks) {
  const FlatLayout l = three_tensors(3);
  // Rank 1 owns [8, 16): the last 2 elements of a and all of b.
  const auto p = l.pieces(l.slice(1));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].tensor, 0u);
  EXPECT_EQ(p[0].tensor_offset, 8);
  EXPECT_EQ(p[0].size, 2);
  EXPECT_EQ(p[1].tensor, 1u);
  EXPECT_EQ(p[1].size, 6);
  // Rank 2 owns c and one padding element: the padding is no piece.
  const auto q = l.pieces(l.slice(2));
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].size, 7);
}

TEST(FlatLayout, OwnerCountsAndBuckets) {
  const FlatLayout l = three_tensors(3);
  EXPECT_EQ(l.owner_counts({4, 20}), (std::vector<int64_t>{4, 8, 4}));
  const auto b = l.buckets(/*bucket_numel=*/8);
  // a (10) alone reaches 8; b + c (13) form the last bucket, which also takes the padding.
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].span, (Span{0, 10}));
  EXPECT_EQ(b[1].span, (Span{10, 24}));
  EXPECT_EQ(b[1].first_tensor, 1u);
  EXPECT_EQ(b[1].end_tensor, 3u);
  // One huge bucket covers everything.
  EXPECT_EQ(l.buckets(1 << 30).size(), 1u);
  // The counts of every bucket add up to the slices.
  std::vector<int64_t> per_rank(3);
  for (const auto& bk : b)
    for (int r = 0; r < 3; ++r) per_rank[r] += l.owner_counts(bk.span)[r];
  EXPECT_EQ(per_rank, (std::vector<int64_t>{8, 8, 8}));
}

TEST(FlatLayout, DifferenceNamesTheTensor) {
  EXPECT_EQ(three_tensors(2).difference(three_tensors(3)), "");
  const FlatLayout other({{"a", {2, 5}}, {"b", {5}}, {"c", {7}}}, 2);
  EXPECT_NE(three_tensors(2).difference(other).find("'b' has shape [6]"), std::string::npos);
}

}  // namespace
}  // namespace lethe::zero
