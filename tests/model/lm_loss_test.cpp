// The chunked head + cross-entropy (model/lm_loss.h) against the plain path — full logits, fp32 upcast,
// torch's cross_entropy — on a tiny random GPT-Neo: the same loss and the same gradient for every parameter
// (the tied head included), with chunks that do not divide the rows and ignored labels; and the mask-free
// causal attention path against the explicit HF mask.
#include "model/lm_loss.h"

#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>

#include "model/causal_lm.h"
#include "test_util.h"

namespace lethe::model {
namespace {

constexpr int64_t kVocab = 97, kBatch = 3, kSeq = 11;

CausalLm small_model(torch::ScalarType dtype = torch::kFloat) {
  CausalLm m = make_causal_lm(test::small_gpt_neo(kVocab, 16, 32), torch::kCPU, dtype);
  m->reset_parameters(7);
  return m;
}

torch::Tensor labels_with_ignored() {
  torch::manual_seed(3);
  torch::Tensor ids = torch::randint(0, kVocab, {kBatch, kSeq}, torch::kLong);
  ids.index_put_({1, torch::indexing::Slice(6, torch::indexing::None)}, -100);  // padding-like tail
  return ids;
}

// Plain path: logits [B, T, V] → fp32 → summed CE of labels shifted by one.
torch::Tensor plain_sum(CausalLm& m, const torch::Tensor& ids, const torch::Tensor& labels) {
  torch::Tensor logits = m->forward(ids.clamp_min(0)).logits;
  return torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, kSeq - 1).reshape({-1, kVocab}).to(torch::kFloat),
      labels.narrow(1, 1, kSeq - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100));
}

std::vector<torch::Tensor> grads_of(CausalLm& m, const torch::Tensor& loss) {
  for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
  loss.backward();
  std::vector<torch::Tensor> g;
  for (auto& p : m->parameters()) g.push_back(p.grad().clone());
  return g;
}

TEST(LmLoss, ChunkedEqualsPlainLossAndGradients) {
  const torch::Tensor labels = labels_with_ignored(), ids = labels.clamp_min(0);
  CausalLm a = small_model(), b = small_model();
  const torch::Tensor plain = plain_sum(a, ids, labels);
  const auto ga = grads_of(a, plain * 0.37);  // a non-unit upstream gradient, as the engine's 1/tokens
  for (int64_t chunk : {1, 4, 7, 1000}) {
    const torch::Tensor hidden = b->forward(ids, {.compute_logits = false}).last_hidden_state;
    const torch::Tensor chunked = next_token_ce_sum(hidden, b->head_weight(), labels, chunk);
    EXPECT_NEAR(chunked.item<double>(), plain.item<double>(), 1e-5 * std::abs(plain.item<double>()))
        << "chunk " << chunk;
    const auto gb = grads_of(b, chunked * 0.37);
    ASSERT_EQ(ga.size(), gb.size());
    for (size_t i = 0; i < ga.size(); ++i)
      EXPECT_LE((ga[i] - gb[i]).abs().max().item<double>(), 1e-5) << "parameter " << i << ", chunk " << chunk;
  }
}

TEST(LmLoss, NoGradientsWorkWithoutAutograd) {
  const torch::Tensor labels = labels_with_ignored(), ids = labels.clamp_min(0);
  CausalLm m = small_model();
  torch::NoGradGuard no_grad;
  const torch::Tensor plain = plain_sum(m, ids, labels);
  const torch::Tensor hidden = m->forward(ids, {.compute_logits = false}).last_hidden_state;
  EXPECT_NEAR(next_token_ce_sum(hidden, m->head_weight(), labels, 5).item<double>(), plain.item<double>(),
              1e-5 * std::abs(plain.item<double>()));
}

TEST(LmLoss, ChunkedLogprobsEqualPlain) {
  const torch::Tensor ids = labels_with_ignored().clamp_min(0);
  CausalLm m = small_model();
  torch::NoGradGuard no_grad;
  const ForwardOutput out = m->forward(ids);
  const torch::Tensor want = next_token_logprobs(out.logits, ids);
  const torch::Tensor got = next_token_logprobs_chunked(out.last_hidden_state, m->head_weight(), ids, 4);
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
}

TEST(LmLoss, Bf16FollowsThePlainPath) {
  // bf16 logits round before the fp32 upcast on both paths; the gradients differ only by the fp32
  // accumulation of the head's gradient over chunks (the plain path accumulates in one bf16 product).
  const torch::Tensor labels = labels_with_ignored(), ids = labels.clamp_min(0);
  CausalLm a = small_model(torch::kBFloat16), b = small_model(torch::kBFloat16);
  const torch::Tensor plain = plain_sum(a, ids, labels);
  const torch::Tensor hidden = b->forward(ids, {.compute_logits = false}).last_hidden_state;
  const torch::Tensor chunked = next_token_ce_sum(hidden, b->head_weight(), labels, 4);
  EXPECT_NEAR(chunked.item<double>(), plain.item<double>(), 1e-3 * std::abs(plain.item<double>()));
  const auto ga = grads_of(a, plain), gb = grads_of(b, chunked);
  for (size_t i = 0; i < ga.size(); ++i) {
    const double scale = ga[i].abs().max().item<double>() + 1e-6;
    EXPECT_LE((ga[i].to(torch::kFloat) - gb[i].to(torch::kFloat)).abs().max().item<double>() / scale, 2e-2)
        << "parameter " << i;
  }
}

// Activation checkpointing recomputes each block in backward: the same loss and the same gradients, for the
// mask-free causal path, a padded batch (explicit masks) and rows longer than the local window.
TEST(ActivationCheckpointing, SameLossAndGradients) {
  torch::manual_seed(5);
  const torch::Tensor short_ids = torch::randint(0, kVocab, {kBatch, 4}, torch::kLong);
  const torch::Tensor long_ids = torch::randint(0, kVocab, {kBatch, 20}, torch::kLong);
  torch::Tensor mask = torch::ones_like(long_ids);
  mask.index_put_({0, torch::indexing::Slice(15, torch::indexing::None)}, 0);
  for (int c = 0; c < 3; ++c) {
    const torch::Tensor& ids = c == 0 ? short_ids : long_ids;
    ForwardArgs args;
    args.compute_logits = false;
    if (c == 2) args.attention_mask = mask;
    std::vector<torch::Tensor> got[2];
    torch::Tensor loss[2];
    for (int on : {0, 1}) {
      CausalLm m = small_model();
      m->set_activation_checkpointing(on == 1);
      const torch::Tensor h = m->forward(ids, args).last_hidden_state;
      loss[on] = next_token_ce_sum(h, m->head_weight(), ids);
      got[on] = grads_of(m, loss[on]);
    }
    EXPECT_LE((loss[0] - loss[1]).abs().item<double>(), 1e-6) << "case " << c;
    ASSERT_EQ(got[0].size(), got[1].size());
    for (size_t i = 0; i < got[0].size(); ++i)
      EXPECT_LE((got[0][i] - got[1][i]).abs().max().item<double>(), 1e-6)
          << "case " << c << " parameter " << i;
  }
}

TEST(Attention, CausalPathEqualsExplicitMask) {
  // No padding, no cache, every key inside the window (T ≤ window for local layers): SDPA's causal kernel
  // against HF's explicit additive mask (an all-ones attention mask forces the masked path).
  GptNeoConfig cfg = test::small_gpt_neo(kVocab, 16, 32);
  cfg.window_size = 16;
  CausalLm m = make_causal_lm(cfg);
  m->reset_parameters(11);
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  const torch::Tensor ids = torch::randint(0, kVocab, {2, 12}, torch::kLong);
  const torch::Tensor causal = m->forward(ids).logits;
  const torch::Tensor masked = m->forward(ids, {.attention_mask = torch::ones_like(ids)}).logits;
  EXPECT_LE((causal - masked).abs().max().item<double>(), 1e-5);
  // Longer than the window: local layers must take the masked path and still agree with the masked run.
  const torch::Tensor long_ids = torch::randint(0, kVocab, {2, 30}, torch::kLong);
  EXPECT_LE((m->forward(long_ids).logits -
             m->forward(long_ids, {.attention_mask = torch::ones_like(long_ids)}).logits)
                .abs()
                .max()
                .item<double>(),
            1e-5);
}

}  // namespace
}  // namespace lethe::model
