// The in-process communicator: collective semantics every backend shares (uneven reduce-scatter and
// all-gather counts, in-place all-gather, bf16 reduced in fp32), and an error on one rank never hangs.
#include "comm/local.h"

#include <gtest/gtest.h>

namespace lethe::comm {
namespace {

TEST(LocalComm, Collectives) {
  run_local(3, [](Communicator& c) {
    const int r = c.rank();
    torch::Tensor t = torch::full({4}, static_cast<float>(r + 1));
    c.all_reduce(t);
    EXPECT_TRUE(t.equal(torch::full({4}, 6.0f)));
    torch::Tensor m = torch::full({1}, static_cast<double>(r), torch::kDouble);
    c.all_reduce(m, ReduceOp::kMax);
    EXPECT_EQ(m.item<double>(), 2.0);

    // Uneven pieces: 2, 3, 1 elements.
    const std::vector<int64_t> counts = {2, 3, 1};
    torch::Tensor in = torch::arange(6, torch::kFloat) * (r + 1);
    torch::Tensor out = torch::empty({counts[r]});
    c.reduce_scatter(in, out, counts);
    const int64_t begin = r == 0 ? 0 : r == 1 ? 2 : 5;
    EXPECT_TRUE(out.equal(torch::arange(begin, begin + counts[r], torch::kFloat) * 6));

    // In place: each rank's input is its own piece of the output.
    torch::Tensor g = torch::zeros({6});
    g.narrow(0, begin, counts[r]).fill_(static_cast<float>(r));
    c.all_gather(g.narrow(0, begin, counts[r]), g, counts);
    EXPECT_TRUE(g.equal(torch::tensor({0.f, 0.f, 1.f, 1.f, 1.f, 2.f})));

    torch::Tensor b = torch::full({3}, r == 1 ? 7.0f : 0.0f);
    c.broadcast(b, 1);
    EXPECT_TRUE(b.equal(torch::full({3}, 7.0f)));

    // bf16 is summed in fp32: 3 x 1.00390625 is not representable in bf16 steps of the partial sums.
    torch::Tensor h = torch::full({2}, 1.00390625f).to(torch::kBFloat16);
    c.all_reduce(h);
    EXPECT_EQ(h.scalar_type(), torch::kBFloat16);
    EXPECT_NEAR(h[0].item<float>(), 3.0117f, 0.02f);
    EXPECT_EQ(c.all_reduce_int(r + 1), 6);
  });
}

TEST(LocalComm, AnErrorOnOneRankEndsEveryRank) {
  EXPECT_THROW(run_local(3,
                         [](Communicator& c) {
                           if (c.rank() == 1) throw std::runtime_error("rank 1 failed on purpose");
                           c.barrier();  // the others would wait here forever without the abort
                           c.barrier();
                         }),
               std::runtime_error);
  try {
    run_local(2, [](Communicator& c) {
      if (c.rank() == 0) c.abort("rank 0: bad input", 2);
      c.barrier();
    });
    FAIL() << "expected an exception";
  } catch (const LocalAbort& e) {
    EXPECT_STREQ(e.what(), "rank 0: bad input");
  }
}

}  // namespace
}  // namespace lethe::comm
