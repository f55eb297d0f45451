// Exact nearest-neighbour search and the model-free TF-IDF embedder.
#include <gtest/gtest.h>

#include "prep/knn.h"

namespace lethe::prep {
namespace {

TEST(Knn, ExactSearchEqualsBruteForce) {
  torch::manual_seed(3);
  torch::Tensor pool = torch::randn({50, 8}), q = torch::randn({6, 8});
  const Neighbours nn = exact_knn(q, pool, 5);
  ASSERT_EQ(nn.ids.sizes(), (std::vector<int64_t>{6, 5}));
  for (int64_t i = 0; i < 6; ++i) {
    torch::Tensor d = (pool.to(torch::kDouble) - q[i].to(torch::kDouble)).pow(2).sum(1);
    auto [s, idx] = d.sort();
    EXPECT_TRUE(nn.ids[i].equal(idx.narrow(0, 0, 5))) << i;
    EXPECT_TRUE(torch::allclose(nn.distances[i], s.narrow(0, 0, 5), 1e-9, 1e-9));
  }
}

TEST(Knn, TiesKeepTheLowerIndex) {
  torch::Tensor pool = torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 0.0}}), q = torch::tensor({{1.0, 0.0}});
  const Neighbours nn = exact_knn(q, pool, 3);
  EXPECT_EQ(nn.ids[0][0].item<int64_t>(), 0);
  EXPECT_EQ(nn.ids[0][1].item<int64_t>(), 2);
}

TEST(Knn, TfidfDistancesAreCosineOnNormalisedVectors) {
  // Row 1 repeats row 0; row 2 shares nothing with either.
  torch::Tensor rows = torch::tensor({{1, 2, 3, 4}, {1, 2, 3, 4}, {7, 8, 9, 10}}, torch::kLong);
  torch::Tensor d = tfidf_sq_distances(rows, 2, torch::tensor({0, 2}, torch::kLong));
  EXPECT_NEAR(d[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(d[0][1].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(d[0][2].item<double>(), 2.0, 1e-12);  // orthogonal unit vectors
  EXPECT_NEAR(d[1][2].item<double>(), 0.0, 1e-12);
  const Neighbours nn = knn_from_distances(d.narrow(1, 1, 2), 1);  // pool = rows 1, 2
  EXPECT_EQ(nn.ids[0][0].item<int64_t>(), 0);
}

}  // namespace
}  // namespace lethe::prep
