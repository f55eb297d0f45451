// GPT-Neo and Llama numerics against Hugging Face transformers, on the tiny random models that
// tests/reference/make_causal_lm_fixtures.py builds at test time (one fixture folder per family and shape).
// Every check runs on every shape through the CausalLm interface, so the two families meet the same bar.
#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>

#include "model/causal_lm.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"
#include "test_util.h"

namespace lethe::model {
namespace {
namespace fs = std::filesystem;

class Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto dir = test::fixtures_dir();
    if (!dir)
      GTEST_SKIP() << "LETHE_FIXTURES unset: run through ctest (it builds the transformers fixtures first)";
    case_dir_ = *dir / GetParam();
    ASSERT_TRUE(fs::is_directory(case_dir_)) << case_dir_;
    exp_ = test::load_tensors(case_dir_ / "expected.safetensors");
    model_ = load_hf_model(case_dir_ / "model");
    model_->eval();
  }
  const torch::Tensor& exp(const std::string& k) { return exp_.at(k); }

  fs::path case_dir_;
  std::map<std::string, torch::Tensor> exp_;
  CausalLm model_{nullptr};
};

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

TEST_P(Parity, LogitsAndHiddenStatesFp32) {
  torch::NoGradGuard ng;
  ForwardOutput out = model_->forward(exp("ids"), {.output_hidden_states = true});
  EXPECT_LE(max_abs_diff(out.logits, exp("logits")), 1e-4);
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(model_->config().num_layers() + 1));
  EXPECT_LE(max_abs_diff(out.hidden_states.front(), exp("hidden_first")), 1e-5);
  EXPECT_LE(max_abs_diff(out.hidden_states.back(), exp("hidden_last")), 1e-4);
}

TEST_P(Parity, ShardedAndBf16Checkpoints) {
  torch::NoGradGuard ng;
  ASSERT_TRUE(fs::exists(case_dir_ / "model_sharded" / "model.safetensors.index.json"));
  CausalLm sharded = load_hf_model(case_dir_ / "model_sharded");
  EXPECT_LE(max_abs_diff(sharded->forward(exp("ids")).logits, exp("logits")), 1e-4);
  // A bf16 file loaded as fp32: exactly the bf16-rounded weights, run in fp32.
  CausalLm from_bf16 = load_hf_model(case_dir_ / "model_bf16");
  EXPECT_LE(max_abs_diff(from_bf16->forward(exp("ids")).logits, exp("logits_bf16_weights")), 1e-4);
}

TEST_P(Parity, RightPaddedBatch) {
  torch::NoGradGuard ng;
  auto out = model_->forward(exp("rp_ids"), {.attention_mask = exp("rp_mask")});
  EXPECT_LE(max_abs_diff(out.logits, exp("rp_logits")), 1e-4);
}

TEST_P(Parity, LeftPaddedBatchWithGenerationPositions) {
  torch::NoGradGuard ng;
  torch::Tensor pos = position_ids_from_mask(exp("lp_mask"));
  ASSERT_TRUE(torch::equal(pos, exp("lp_pos")));
  auto out = model_->forward(exp("lp_ids"), {.attention_mask = exp("lp_mask"), .position_ids = pos});
  EXPECT_LE(max_abs_diff(out.logits, exp("lp_logits")), 1e-4);
}

TEST_P(Parity, LossAndGradients) {
  torch::Tensor ids = exp("ids");
  torch::Tensor loss = causal_lm_loss(model_->forward(ids).logits, ids);
  EXPECT_NEAR(loss.item<double>(), exp("loss").item<double>(), 1e-5);
  loss.backward();
  int checked = 0;
  for (auto& p : model_->named_parameters()) {
    const torch::Tensor& want = exp("grad." + p.key());
    const double scale = std::max(want.abs().max().item<double>(), 1e-12);
    // Relative to the tensor's largest gradient: elementwise relative error is meaningless near zero.
    EXPECT_LE(max_abs_diff(p.value().grad(), want) / scale, 1e-4) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(model_->parameters().size()));
}

TEST_P(Parity, GradientsOfAFewRows) {
  // 12 tokens: the projections take their few-rows path (W·xᵀ), which must differentiate the same.
  torch::Tensor ids = exp("small_ids");
  ASSERT_LE(ids.numel(), 16);
  causal_lm_loss(model_->forward(ids).logits, ids).backward();
  for (auto& p : model_->named_parameters()) {
    const torch::Tensor& want = exp("small_grad." + p.key());
    const double scale = std::max(want.abs().max().item<double>(), 1e-12);
    EXPECT_LE(max_abs_diff(p.value().grad(), want) / scale, 1e-4) << p.key();
  }
}

TEST_P(Parity, Bf16Logits) {
  torch::NoGradGuard ng;
  model_->to(torch::kBFloat16);
  torch::Tensor ours = model_->forward(exp("ids")).logits.to(torch::kFloat);
  // bf16 keeps 8 mantissa bits, so two correct bf16 implementations differ by their rounding order alone; the
  // yardstick is HF's own bf16 error against its fp32 logits. Ours must be about as accurate (within 1.5x of
  // that error, measured against fp32) and within 2x of it from HF's bf16 logits. A real bug (a wrong mask, a
  // missing layer) moves logits by O(1) on these models, far beyond both bounds.
  const double hf_err = max_abs_diff(exp("bf16_logits"), exp("logits"));
  const double our_err = max_abs_diff(ours, exp("logits"));
  EXPECT_LE(our_err, 1.5 * hf_err) << "HF bf16 error " << hf_err;
  EXPECT_LE(max_abs_diff(ours, exp("bf16_logits")), 2.0 * hf_err) << "HF bf16 error " << hf_err;
}

TEST_P(Parity, Bf16LeftPaddedStaysFinite) {
  // In bf16 the fp32 mask minimum rounds to -inf, so fully masked key blocks (left padding, local windows
  // shorter than the sequence) must still give finite outputs, close to the fp32 ones at real tokens.
  torch::NoGradGuard ng;
  torch::Tensor pos = position_ids_from_mask(exp("lp_mask"));
  model_->to(torch::kBFloat16);
  torch::Tensor ours = model_->forward(exp("lp_ids"), {.attention_mask = exp("lp_mask"), .position_ids = pos})
                           .logits.to(torch::kFloat);
  EXPECT_TRUE(torch::isfinite(ours).all().item<bool>());
  torch::Tensor real = exp("lp_mask").to(torch::kBool).unsqueeze(-1);
  const double hf_err = max_abs_diff(exp("bf16_logits"), exp("logits"));  // HF's own bf16 error, unpadded
  const double diff = (ours - exp("lp_logits")).abs().masked_select(real).max().item<double>();
  EXPECT_LE(diff, 2.0 * hf_err) << "HF bf16 error " << hf_err;
}

TEST_P(Parity, KvCacheMatchesFullForward) {
  torch::NoGradGuard ng;
  torch::Tensor ids = exp("ids");
  const int64_t t = ids.size(1), split = t - 6;
  KvCache cache;
  auto first = model_->forward(ids.slice(1, 0, split), {.cache = &cache});
  std::vector<torch::Tensor> parts = {first.logits};
  for (int64_t i = split; i < t; ++i)
    parts.push_back(model_->forward(ids.slice(1, i, i + 1), {.cache = &cache}).logits);
  EXPECT_LE(max_abs_diff(torch::cat(parts, 1), exp("logits")), 1e-4);
}

// The preallocated cache (generate() uses it on GPUs): the same logits, and a reorder that multiplies rows
// (prefill → beams) keeps exactly the filled positions.
TEST_P(Parity, PreallocatedKvCacheMatchesFullForward) {
  torch::NoGradGuard ng;
  torch::Tensor ids = exp("ids");
  const int64_t t = ids.size(1), split = t - 6;
  KvCache cache, grown;
  cache.capacity = t + 3;
  auto first = model_->forward(ids.slice(1, 0, split), {.cache = &cache});
  model_->forward(ids.slice(1, 0, split), {.cache = &grown});
  const torch::Tensor rows = torch::arange(ids.size(0)).repeat_interleave(2).flip(0);
  cache.reorder(rows);
  grown.reorder(rows);
  for (size_t l = 0; l < cache.keys.size(); ++l) {
    EXPECT_EQ(cache.keys[l].size(2), t + 3);
    EXPECT_TRUE(cache.keys[l].narrow(2, 0, split).equal(grown.keys[l]));
    EXPECT_TRUE(cache.values[l].narrow(2, 0, split).equal(grown.values[l]));
  }
  cache.reorder(torch::arange(0, 2 * ids.size(0), 2).flip(0));  // back to one row per prompt, in order
  std::vector<torch::Tensor> parts = {first.logits};
  for (int64_t i = split; i < t; ++i)
    parts.push_back(model_->forward(ids.slice(1, i, i + 1), {.cache = &cache}).logits);
  EXPECT_LE(max_abs_diff(torch::cat(parts, 1), exp("logits")), 1e-4);
}

void expect_generation(CausalLm& model, const std::map<std::string, torch::Tensor>& e, const std::string& key,
                       GenerateOptions o) {
  SCOPED_TRACE(key);
  o.max_new_tokens = 12;
  GenerateResult r = generate(model, e.at("gen_ids"), e.at("gen_mask"), o);
  const torch::Tensor& want = e.at(key);
  ASSERT_EQ(r.sequences.sizes(), want.sizes()) << key << "\nours:\n" << r.sequences << "\nHF:\n" << want;
  EXPECT_TRUE(torch::equal(r.sequences, want)) << key << "\nours:\n" << r.sequences << "\nHF:\n" << want;
}

TEST_P(Parity, GreedyGeneration) {
  const int64_t eos = exp("eos").item<int64_t>();
  expect_generation(model_, exp_, "greedy_noeos", {.eos_token_ids = {}, .pad_token_id = 0});
  expect_generation(model_, exp_, "greedy", {.eos_token_ids = {eos}});
}

TEST_P(Parity, BeamGeneration) {
  const int64_t eos = exp("eos").item<int64_t>();
  expect_generation(model_, exp_, "beam2", {.num_beams = 2, .eos_token_ids = {eos}});
  expect_generation(model_, exp_, "beam3_lp0.5_early",
                    {.num_beams = 3,
                     .length_penalty = 0.5,
                     .early_stopping = EarlyStopping::kTrue,
                     .eos_token_ids = {eos}});
  expect_generation(model_, exp_, "beam2_never",
                    {.num_beams = 2, .early_stopping = EarlyStopping::kNever, .eos_token_ids = {eos}});
}

// Several EOS ids (Llama-3 Instruct's three): a row ends on any of them, and beam search keeps
// max(2, 1 + #eos)·num_beams candidates as HF does.
TEST_P(Parity, GenerationWithAListOfEosIds) {
  const torch::Tensor list = exp("eos_list");
  std::vector<int64_t> ids(list.data_ptr<int64_t>(), list.data_ptr<int64_t>() + list.numel());
  expect_generation(model_, exp_, "greedy_eos_list", {.eos_token_ids = ids});
  expect_generation(model_, exp_, "beam2_eos_list", {.num_beams = 2, .eos_token_ids = ids});
}

TEST_P(Parity, SavedFolderLoadsInTransformers) {
  test::TempDir tmp;
  save_hf_model(model_, tmp.path() / "saved");
  // Round trip through our own reader first.
  CausalLm again = load_hf_model(tmp.path() / "saved");
  torch::NoGradGuard ng;
  EXPECT_LE(max_abs_diff(again->forward(exp("ids")).logits, exp("logits")), 1e-4);
  auto py = test::python();
  if (!py) GTEST_SKIP() << "LETHE_PYTHON unset: cannot ask transformers to load the saved folder";
  const std::string cmd =
      fmt::format("'{}' '{}/tests/reference/check_saved_model.py' '{}' '{}'", *py, LETHE_SOURCE_DIR,
                  (tmp.path() / "saved").string(), (case_dir_ / "expected.safetensors").string());
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

INSTANTIATE_TEST_SUITE_P(Shapes, Parity,
                         ::testing::Values("gpt_neo/window", "gpt_neo/mixed", "gpt_neo/global", "llama/gqa",
                                           "llama/mha", "llama/tied", "llama/llama3"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '/', '_');
                           return name;
                         });

}  // namespace
}  // namespace lethe::model
