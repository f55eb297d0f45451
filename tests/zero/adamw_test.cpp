// The fused AdamW against libtorch's reference torch::optim::AdamW (the same algorithm as torch.optim.AdamW).
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include "zero/adamw.h"

namespace lethe::zero {
namespace {

TEST(AdamW, MatchesTorchOptimAdamW) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> ours, ref;
  for (auto shape : {std::vector<int64_t>{7, 5}, {13}, {}}) {
    torch::Tensor p = torch::randn(shape);
    ours.push_back(p.clone().requires_grad_());
    ref.push_back(p.clone().requires_grad_());
  }
  AdamWOptions o{.lr = 3e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
  AdamW opt(ours, o);
  torch::optim::AdamW reference(
      ref,
      torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < ours.size(); ++i) {
      torch::Tensor g = torch::randn(ours[i].sizes());
      ours[i].mutable_grad() = g.clone();
      ref[i].mutable_grad() = g.clone();
    }
    opt.step();
    reference.step();
  }
  for (size_t i = 0; i < ours.size(); ++i)
    EXPECT_LE((ours[i] - ref[i]).abs().max().item<double>(), 1e-6) << "tensor " << i;
  EXPECT_EQ(opt.state_bytes(), (35 + 13 + 1) * 8);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  torch::Tensor a = torch::ones({3}).requires_grad_(), b = torch::ones({3}).requires_grad_();
  AdamW opt({a, b}, {.lr = 0.1});
  a.mutable_grad() = torch::ones({3});
  opt.step();
  EXPECT_TRUE(torch::equal(b, torch::ones({3})));
  EXPECT_FALSE(torch::equal(a, torch::ones({3})));
}

}  // namespace
}  // namespace lethe::zero
