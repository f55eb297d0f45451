// The ZeRO engine on the in-process communicator, every stage at 1-3 ranks, against torch::optim::AdamW +
// clip_grad_norm_ on the whole global batch in one process; plus the exact memory and communication
// accounting the engine reports.
#include "zero/engine.h"

#include <cmath>
#include <mutex>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "comm/local.h"
#include "model/causal_lm.h"
#include "test_util.h"

namespace lethe::zero {
namespace {

model::GptNeoConfig small() {
  return test::small_gpt_neo(64, 16, 32);
}

constexpr int64_t kGlobal = 12, kMicro = 2, kSeq = 9, kSteps = 5;
constexpr double kLr = 1e-2, kClip = 0.3;

torch::Tensor batch(int64_t step) {
  torch::manual_seed(100 + step);
  return torch::randint(0, 64, {kGlobal, kSeq}, torch::kLong);
}

// Reference: one process, the whole global batch, mean loss, torch's AdamW.
std::vector<torch::Tensor> reference() {
  model::CausalLm m = model::make_causal_lm(small());
  m->reset_parameters(5);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(kLr).weight_decay(0.1));
  for (int64_t s = 0; s < kSteps; ++s) {
    const torch::Tensor ids = batch(s);
    model::causal_lm_loss(m->forward(ids).logits, ids).backward();
    torch::nn::utils::clip_grad_norm_(m->parameters(), kClip);
    opt.step();
    opt.zero_grad();
  }
  std::vector<torch::Tensor> out;
  for (auto& [name, p] : unique_parameters(*m)) out.push_back(p.detach().clone());
  return out;
}

struct RankResult {
  std::vector<torch::Tensor> params;
  MemoryReport memory;
  comm::CommStats stats;
  int64_t predicted_reduce = 0, predicted_gather = 0, slice = 0, psi = 0, padded = 0;
};

std::vector<RankResult> train(int world, int stage) {
  std::vector<RankResult> results(world);
  // Drawn before the rank threads start: the global generator is not safe to seed from several threads.
  std::vector<torch::Tensor> batches;
  for (int64_t s = 0; s < kSteps; ++s) batches.push_back(batch(s));
  comm::run_local(world, [&](comm::Communicator& c) {
    model::CausalLm m = model::make_causal_lm(small());
    m->reset_parameters(5);
    EngineOptions o;
    o.stage = stage;
    o.bucket_numel = 300;  // several buckets, some parameters larger than one
    o.adam.weight_decay = 0.1;
    o.max_grad_norm = kClip;
    ZeroEngine engine(*m, c, o);
    const int64_t per_rank = kGlobal / world, accum = per_rank / kMicro;
    const double tokens = static_cast<double>(kGlobal * (kSeq - 1));
    for (int64_t s = 0; s < kSteps; ++s) {
      const torch::Tensor mine = batches[s].narrow(0, c.rank() * per_rank, per_rank);
      c.reset_stats();
      for (int64_t a = 0; a < accum; ++a) {
        const torch::Tensor ids = mine.narrow(0, a * kMicro, kMicro);
        const torch::Tensor logits = m->forward(ids).logits;
        const torch::Tensor ce = torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}), ids.narrow(1, 1, kSeq - 1).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        engine.backward(ce / tokens);
      }
      engine.step(kLr);
    }
    RankResult& r = results[c.rank()];
    for (auto& [name, p] : unique_parameters(*m)) r.params.push_back(p.detach().clone());
    r.memory = engine.memory();
    r.stats = c.stats();
    r.predicted_reduce = engine.predicted_reduce_bytes(accum);
    r.predicted_gather = engine.predicted_gather_bytes();
    r.slice = engine.owned().size();
    r.psi = engine.layout().numel();
    r.padded = engine.layout().padded_numel();
  });
  return results;
}

class EngineEquivalence : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(EngineEquivalence, MatchesSingleProcessAdamW) {
  at::set_num_threads(1);
  const auto [world, stage] = GetParam();
  const std::vector<torch::Tensor> want = reference();
  const std::vector<RankResult> got = train(world, stage);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(got[r].params.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_LE((got[r].params[i] - want[i]).abs().max().item<double>(), 1e-5)
          << "rank " << r << " tensor " << i;
    // Optimizer state: exactly 12 bytes per owned element; the slice is ⌈Ψ/N⌉ rounded up to 16.
    const RankResult& g = got[r];
    EXPECT_EQ(g.memory.optimizer_bytes, 12 * g.slice);
    if (stage > 0) {
      EXPECT_EQ(g.slice, g.padded / world);
      EXPECT_LT(g.slice - (g.psi + world - 1) / world, 16);
      // The last step's collective traffic is exactly what the layout predicts.
      EXPECT_EQ(g.stats.reduce_scatter_bytes, g.predicted_reduce);
      EXPECT_EQ(g.stats.all_gather_bytes, g.predicted_gather);
    } else {
      EXPECT_EQ(g.stats.all_reduce_bytes, g.predicted_reduce);  // stage 0 needs no norm reduction
    }
  }
}

INSTANTIATE_TEST_SUITE_P(StagesAndRanks, EngineEquivalence,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(0, 1, 2)));

TEST(Engine, Stage2GradientMemoryShrinksWithRanks) {
  at::set_num_threads(1);
  const int64_t one = train(1, 2)[0].memory.grad_bytes_peak, two = train(2, 2)[0].memory.grad_bytes_peak,
                three = train(3, 2)[0].memory.grad_bytes_peak, full = train(2, 1)[0].memory.grad_bytes_peak;
  EXPECT_LT(two, one);
  EXPECT_LT(three, two);
  EXPECT_LT(two, full);  // stage 1 keeps the whole gradient buffer
}

// bf16 parameters with fp32 master weights: the parameters are always the master rounded to bf16, reductions
// run in fp32, and sharding changes nothing beyond bf16 rounding of the forward pass.
TEST(Engine, Bf16ParametersKeepFp32Masters) {
  at::set_num_threads(1);
  std::vector<torch::Tensor> batches;
  for (int64_t s = 0; s < kSteps; ++s) batches.push_back(batch(s));
  std::vector<torch::Tensor> finals(3);
  for (int world : {1, 2}) {
    comm::run_local(world, [&](comm::Communicator& c) {
      model::CausalLm m = model::make_causal_lm(small());
      m->reset_parameters(5);
      m->to(torch::kBFloat16);
      EngineOptions o;
      o.stage = world == 1 ? 0 : 2;
      o.bucket_numel = 300;
      o.max_grad_norm = kClip;
      ZeroEngine engine(*m, c, o);
      const int64_t per_rank = kGlobal / world;
      for (int64_t s = 0; s < kSteps; ++s) {
        const torch::Tensor ids = batches[s].narrow(0, c.rank() * per_rank, per_rank);
        const torch::Tensor logits = m->forward(ids).logits.to(torch::kFloat);
        const torch::Tensor ce = torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}), ids.narrow(1, 1, kSeq - 1).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        engine.backward(ce / static_cast<double>(kGlobal * (kSeq - 1)));
        engine.step(kLr);
      }
      EXPECT_EQ(engine.flat_parameters().scalar_type(), torch::kBFloat16);
      EXPECT_EQ(engine.master().scalar_type(), torch::kFloat);
      const Span own = engine.owned();
      EXPECT_TRUE(engine.flat_parameters()
                      .narrow(0, own.begin, own.size())
                      .equal(engine.master().to(torch::kBFloat16)));
      if (c.rank() == 0) finals[world] = engine.flat_parameters().to(torch::kFloat).clone();
    });
  }
  // lr 1e-2 moves weights by ~5e-2 over the run; bf16 rounding of activations may shift a few updates.
  EXPECT_LE((finals[1] - finals[2]).abs().max().item<double>(), 2e-2);
}

// Micro-step gradients of 16-bit parameters: with fp32 accumulation the step sees the fp32 sum of the
// micro-steps' bf16 gradients; without, their running sum rounded to bf16 after every micro-step. The
// gradient norm the step reports tells which one the engine reduced.
TEST(Engine, Bf16GradientsAccumulateInFp32) {
  at::set_num_threads(1);
  const torch::Tensor ids = batch(0);
  const double tokens = static_cast<double>(kGlobal * (kSeq - 1));
  auto micro_loss = [&](model::CausalLm& m, int64_t a) {
    const torch::Tensor x = ids.narrow(0, a * kMicro, kMicro);
    const torch::Tensor logits = m->forward(x).logits.to(torch::kFloat);
    return torch::nn::functional::cross_entropy(
               logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}), x.narrow(1, 1, kSeq - 1).reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
           tokens;
  };
  const int64_t accum = kGlobal / kMicro;
  // The two references, from each micro-step's own bf16 gradient.
  double fp32_sq = 0, bf16_sq = 0;
  {
    model::CausalLm m = model::make_causal_lm(small());
    m->reset_parameters(5);
    m->to(torch::kBFloat16);
    std::vector<torch::Tensor> f32, b16;
    for (int64_t a = 0; a < accum; ++a) {
      for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
      micro_loss(m, a).backward();
      size_t i = 0;
      for (auto& [name, p] : unique_parameters(*m)) {
        if (a == 0) {
          f32.push_back(p.grad().to(torch::kFloat));
          b16.push_back(p.grad().clone());
        } else {
          f32[i].add_(p.grad().to(torch::kFloat));
          b16[i].add_(p.grad());
        }
        ++i;
      }
    }
    for (size_t i = 0; i < f32.size(); ++i) {
      fp32_sq += f32[i].to(torch::kDouble).square().sum().item<double>();
      bf16_sq += b16[i].to(torch::kDouble).square().sum().item<double>();
    }
  }
  ASSERT_NE(fp32_sq, bf16_sq);  // the test tells the two apart
  for (int stage : {0, 1})
    for (bool fp32 : {true, false}) {
      double norm = 0;
      comm::run_local(1, [&](comm::Communicator& c) {
        model::CausalLm m = model::make_causal_lm(small());
        m->reset_parameters(5);
        m->to(torch::kBFloat16);
        EngineOptions o;
        o.stage = stage;
        o.bucket_numel = 300;
        o.max_grad_norm = 0;
        o.fp32_accumulation = fp32;
        ZeroEngine engine(*m, c, o);
        for (int64_t a = 0; a < accum; ++a) engine.backward(micro_loss(m, a));
        norm = engine.step(kLr).grad_norm;
      });
      const double want = std::sqrt(fp32 ? fp32_sq : bf16_sq);
      EXPECT_NEAR(norm, want, 1e-6 * want)
          << "stage " << stage << (fp32 ? " fp32" : " bf16") << " accumulation";
    }
}

// reduce_bf16 halves what every stage reduces, exactly as predicted, and moves the result only by bf16
// rounding of the gradients.
TEST(Engine, Bf16ReductionHalvesTheBytes) {
  at::set_num_threads(1);
  for (int stage : {0, 1, 2}) {
    std::vector<torch::Tensor> finals[2], batches;
    for (int64_t s = 0; s < kSteps; ++s) batches.push_back(batch(s));
    int64_t bytes[2] = {0, 0};
    for (int bf16 : {0, 1}) {
      comm::run_local(2, [&](comm::Communicator& c) {
        model::CausalLm m = model::make_causal_lm(small());
        m->reset_parameters(5);
        EngineOptions o;
        o.stage = stage;
        o.bucket_numel = 300;
        o.max_grad_norm = kClip;
        o.reduce_bf16 = bf16 == 1;
        ZeroEngine engine(*m, c, o);
        for (int64_t s = 0; s < kSteps; ++s) {
          const torch::Tensor ids = batches[s].narrow(0, c.rank() * kGlobal / 2, kGlobal / 2);
          c.reset_stats();
          const torch::Tensor logits = m->forward(ids).logits;
          engine.backward(torch::nn::functional::cross_entropy(
                              logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}),
                              ids.narrow(1, 1, kSeq - 1).reshape({-1}),
                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                          static_cast<double>(kGlobal * (kSeq - 1)));
          engine.step(kLr);
        }
        const comm::CommStats& st = c.stats();
        const int64_t reduced = stage == 0 ? st.all_reduce_bytes : st.reduce_scatter_bytes;
        EXPECT_EQ(reduced, engine.predicted_reduce_bytes(1)) << "stage " << stage;
        if (c.rank() == 0) {
          bytes[bf16] = engine.predicted_reduce_bytes(1);
          for (auto& [name, p] : unique_parameters(*m)) finals[bf16].push_back(p.detach().clone());
        }
      });
    }
    EXPECT_EQ(bytes[1] * 2, bytes[0]) << "stage " << stage;
    for (size_t i = 0; i < finals[0].size(); ++i)
      // Adam normalises each element's step: where the ranks' contributions nearly cancel, bf16 rounding can
      // flip a step's sign (up to 2 lr per step for that element), so the bound is on the mean (~2e-4 here).
      EXPECT_LE((finals[0][i] - finals[1][i]).abs().mean().item<double>(), 1e-3) << "stage " << stage;
  }
}

// fp16 parameters with dynamic loss scaling: an overflowing step changes nothing and halves the scale; finite
// steps grow it after growth_interval; the run ends near the fp32 one.
TEST(Engine, Fp16LossScalingSkipsOverflowsAndGrows) {
  at::set_num_threads(1);
  std::vector<torch::Tensor> fp16_final;
  comm::run_local(1, [&](comm::Communicator& c) {
    model::CausalLm m = model::make_causal_lm(small());
    m->reset_parameters(5);
    m->to(torch::kHalf);
    EngineOptions o;
    o.stage = 2;
    o.bucket_numel = 300;
    o.max_grad_norm = kClip;
    o.adam.weight_decay = 0.1;
    o.loss_scaling = {.enabled = true, .initial_scale = std::ldexp(1.0, 40), .growth_interval = 2};
    ZeroEngine engine(*m, c, o);
    int skipped = 0, grown = 0;
    double last_scale = engine.loss_scale();
    for (int64_t s = 0; s < kSteps + skipped; ++s) {
      ASSERT_LT(s, 40) << "the scale never came down";
      const torch::Tensor ids = batch(s - skipped);
      const torch::Tensor before = engine.flat_parameters().clone();
      const torch::Tensor logits = m->forward(ids).logits.to(torch::kFloat);
      engine.backward(torch::nn::functional::cross_entropy(
                          logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}),
                          ids.narrow(1, 1, kSeq - 1).reshape({-1}),
                          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                      static_cast<double>(kGlobal * (kSeq - 1)));
      const StepResult r = engine.step(kLr);
      EXPECT_EQ(r.loss_scale, last_scale);
      if (r.skipped) {
        ++skipped;
        EXPECT_TRUE(engine.flat_parameters().equal(before)) << "a skipped step changed the parameters";
        EXPECT_EQ(engine.loss_scale(), last_scale / 2);
      } else {
        EXPECT_TRUE(std::isfinite(r.grad_norm));
        if (engine.loss_scale() > last_scale) ++grown;
      }
      last_scale = engine.loss_scale();
    }
    EXPECT_GT(skipped, 0);
    EXPECT_GT(grown, 0);
    EXPECT_EQ(engine.adam_steps(), kSteps);
    for (auto& [name, p] : unique_parameters(*m)) fp16_final.push_back(p.detach().to(torch::kFloat));
  });
  const std::vector<torch::Tensor> want = reference();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_LE((fp16_final[i] - want[i]).abs().max().item<double>(), 2e-2) << "tensor " << i;
}

// ZeRO-2 with activation checkpointing, the model run twice before each backward (as ICU runs its forget and
// neighbour batches): each parameter's hook must fire once with both contributions summed, and the run still
// matches single-process AdamW.
TEST(Engine, Stage2WithActivationCheckpointingMatchesAdamW) {
  at::set_num_threads(1);
  const std::vector<torch::Tensor> want = reference();
  std::vector<torch::Tensor> batches;
  for (int64_t s = 0; s < kSteps; ++s) batches.push_back(batch(s));
  comm::run_local(2, [&](comm::Communicator& c) {
    model::CausalLm m = model::make_causal_lm(small());
    m->reset_parameters(5);
    m->set_activation_checkpointing(true);
    EngineOptions o;
    o.stage = 2;
    o.bucket_numel = 300;
    o.adam.weight_decay = 0.1;
    o.max_grad_norm = kClip;
    ZeroEngine engine(*m, c, o);
    for (int64_t s = 0; s < kSteps; ++s) {
      const torch::Tensor mine = batches[s].narrow(0, c.rank() * kGlobal / 2, kGlobal / 2);
      torch::Tensor loss = torch::zeros({});
      for (int half = 0; half < 2; ++half) {
        const torch::Tensor ids = mine.narrow(0, half * kGlobal / 4, kGlobal / 4);
        const torch::Tensor logits = m->forward(ids).logits;
        loss = loss + torch::nn::functional::cross_entropy(
                          logits.narrow(1, 0, kSeq - 1).reshape({-1, 64}),
                          ids.narrow(1, 1, kSeq - 1).reshape({-1}),
                          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      }
      engine.backward(loss / static_cast<double>(kGlobal * (kSeq - 1)));
      engine.step(kLr);
    }
    size_t i = 0;
    for (auto& [name, p] : unique_parameters(*m))
      EXPECT_LE((p.detach() - want[i++]).abs().max().item<double>(), 1e-5)
          << "rank " << c.rank() << " " << name;
  });
}

TEST(Engine, TiedWeightsCountOnce) {
  model::CausalLm m = model::make_causal_lm(small());
  int64_t named = 0;
  for (const auto& p : m->parameters()) named += p.numel();
  int64_t unique = 0;
  for (auto& [name, p] : unique_parameters(*m)) unique += p.numel();
  EXPECT_EQ(named, unique);  // the LM head reuses wte and registers no parameter of its own
  // A module that registers one tensor twice.
  struct Tied : torch::nn::Module {
    Tied() {
      auto w = register_parameter("a", torch::ones({3}));
      register_parameter("b", w);
    }
  } tied;
  EXPECT_EQ(unique_parameters(tied).size(), 1u);
}

}  // namespace
}  // namespace lethe::zero
