// ICU's metrics and loss terms against the Python oracle (tests/reference/make_icu_fixtures.py): MA and
// EL_n (both start conventions) transcribed from the reference formulas on a partly memorising tiny
// GPT-Neo, 2-beam generation against transformers' generate, sentence BLEU against nltk and word tokens
// against nltk's NLTKWordTokenizer.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comm/local.h"
#include "eval/bleu.h"
#include "eval/extraction.h"
#include "model/generate.h"
#include "model/hf_checkpoint.h"
#include "test_util.h"
#include "text/word_tokenize.h"
#include "unlearn/objective.h"
#include "zero/engine.h"

namespace lethe {
namespace {
namespace fs = std::filesystem;

class IcuOracle : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = test::fixtures_dir();
    if (!dir) GTEST_SKIP() << "LETHE_FIXTURES unset: run through ctest (it builds the fixtures first)";
    dir_ = *dir / "icu";
    ASSERT_TRUE(fs::is_directory(dir_)) << dir_;
    exp_ = test::load_tensors(dir_ / "expected.safetensors");
    model_ = model::load_hf_model(dir_ / "model");
  }
  const torch::Tensor& exp(const std::string& k) { return exp_.at(k); }
  double scalar(const std::string& k) { return exp(k).item<double>(); }

  fs::path dir_;
  std::map<std::string, torch::Tensor> exp_;
  model::CausalLm model_{nullptr};
};

void expect_near_all(const std::vector<double>& got, const torch::Tensor& want, double tol) {
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[static_cast<int64_t>(i)].item<double>(), tol) << "row " << i;
}

TEST_F(IcuOracle, MemorizationAccuracyMatchesReference) {
  expect_near_all(eval::memorization_accuracy(model_, exp("rows"), 3), exp("ma"), 1e-12);
}

TEST_F(IcuOracle, ExtractionLikelihoodBothVariantsMatchReference) {
  // ICU: starts from the suffix column (20 for these 40-token rows); KU: from 1. Small chunks force mixed
  // prompt lengths (left padding) inside a chunk as well.
  for (int64_t chunk : {64, 7}) {
    expect_near_all(eval::extraction_likelihood(model_, exp("rows"), {.n = 10, .first = 20, .chunk = chunk}),
                    exp("el_icu"), 1e-12);
    expect_near_all(eval::extraction_likelihood(model_, exp("rows"), {.n = 10, .first = 1, .chunk = chunk}),
                    exp("el_ku"), 1e-12);
  }
}

TEST_F(IcuOracle, TwoBeamGenerationIsTokenIdentical) {
  model::GenerateOptions g{.max_new_tokens = 10, .num_beams = 2, .eos_token_ids = {299}, .pad_token_id = 299};
  torch::Tensor out = model::generate(model_, exp("beam_prompt"), {}, g).sequences;
  torch::Tensor got = torch::full({3, 10}, 299, torch::kLong);
  got.narrow(1, 0, out.size(1) - 10).copy_(out.narrow(1, 10, out.size(1) - 10));
  EXPECT_TRUE(got.equal(exp("beam_out"))) << got << exp("beam_out");
}

unlearn::Terms terms_on(model::CausalLm& m, model::CausalLm& ref, const torch::Tensor& f,
                        const torch::Tensor& n) {
  const unlearn::Counts c = unlearn::count_labels(f, n, 299);
  return unlearn::compute_terms(unlearn::Method::kIcu, {}, m, &ref, f, n, 299, c);
}

TEST_F(IcuOracle, IcuLossTermsAndOneAdamStepMatchReference) {
  model::CausalLm ref = model::load_hf_model(dir_ / "model");
  const torch::Tensor f = exp("forget_ids"), n = exp("neighbour_ids");
  const unlearn::Counts c = unlearn::count_labels(f, n, 299);
  unlearn::Terms t = terms_on(model_, ref, f, n);
  EXPECT_NEAR(t.forget_sum.item<double>() / c.forget_tokens, scalar("ce_u"), 1e-5);
  EXPECT_NEAR(t.neighbour_sum.item<double>() / c.neighbour_tokens, scalar("ce_l"), 1e-5);
  EXPECT_NEAR(t.kl_sum.item<double>() / c.positions, scalar("kl"), 1e-5);
  EXPECT_NEAR(t.loss.item<double>(), scalar("total"), 1e-5);

  // Inactive pairs leave all three terms: only rows 0 and 2.
  const torch::Tensor keep = torch::tensor({0, 2}, torch::kLong);
  const unlearn::Terms a = terms_on(model_, ref, f.index_select(0, keep), n.index_select(0, keep));
  EXPECT_NEAR(a.loss.item<double>(), scalar("total_active"), 1e-5);

  // One Adam step (betas 0.9/0.98, no clipping) through the engine; p stays the frozen original.
  auto comm = comm::make_self();
  zero::EngineOptions eo;
  eo.stage = 0;
  eo.adam = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.0};
  eo.max_grad_norm = 0;
  model_->train();
  zero::ZeroEngine engine(*model_, *comm, eo);
  engine.backward(terms_on(model_, ref, f, n).loss);
  engine.step(1e-3);
  unlearn::Terms after = terms_on(model_, ref, f, n);
  EXPECT_NEAR(after.forget_sum.item<double>() / c.forget_tokens, scalar("ce_u_after"), 2e-4);
  EXPECT_NEAR(after.neighbour_sum.item<double>() / c.neighbour_tokens, scalar("ce_l_after"), 2e-4);
  EXPECT_NEAR(after.kl_sum.item<double>() / c.positions, scalar("kl_after"), 2e-4);
  EXPECT_NEAR(after.loss.item<double>(), scalar("total_after"), 2e-4);
}

// ICU's re-encoded rows are left-padded with EOS under an attention mask (data/rows.h): the masks reach both
// forwards and the frozen reference, and the KL term still averages over every position.
TEST_F(IcuOracle, IcuLossTermsOnLeftPaddedRowsUnderMasksMatchReference) {
  model::CausalLm ref = model::load_hf_model(dir_ / "model");
  const torch::Tensor f = exp("forget_padded"), n = exp("neighbour_padded");
  const unlearn::Counts c = unlearn::count_labels(f, n, 299);
  const unlearn::Terms t = unlearn::compute_terms(unlearn::Method::kIcu, {}, model_, &ref, f, n, 299, c,
                                                  exp("forget_mask"), exp("neighbour_mask"));
  EXPECT_NEAR(t.forget_sum.item<double>() / c.forget_tokens, scalar("ce_u_masked"), 1e-5);
  EXPECT_NEAR(t.neighbour_sum.item<double>() / c.neighbour_tokens, scalar("ce_l_masked"), 1e-5);
  EXPECT_NEAR(t.kl_sum.item<double>() / c.positions, scalar("kl_masked"), 1e-5);
  EXPECT_NEAR(t.loss.item<double>(), scalar("total_masked"), 1e-5);
  // Without the masks the padded rows give other terms: the test sees the masks.
  EXPECT_GT(std::abs(terms_on(model_, ref, f, n).loss.item<double>() - scalar("total_masked")), 1e-4);
}

nlohmann::json bleu_cases(const fs::path& dir) {
  std::ifstream in(dir / "bleu.json");
  return nlohmann::json::parse(in);
}

TEST_F(IcuOracle, SentenceBleuEqualsNltk) {
  const nlohmann::json j = bleu_cases(dir_);
  ASSERT_GE(j["bleu"].size(), 25u);
  for (const auto& c : j["bleu"]) {
    const auto ref = c["reference"].get<std::vector<std::string>>();
    const auto hyp = c["hypothesis"].get<std::vector<std::string>>();
    const double want = c["bleu"].get<double>(), got = eval::sentence_bleu({ref}, hyp);
    if (want == 0)
      EXPECT_EQ(got, 0.0) << c.dump();
    else
      EXPECT_NEAR(got / want, 1.0, 1e-13) << c.dump();
  }
}

TEST_F(IcuOracle, WordTokensEqualNltkTreebank) {
  const nlohmann::json j = bleu_cases(dir_);
  ASSERT_GE(j["tokenize"].size(), 40u);
  for (const auto& c : j["tokenize"]) {
    const std::string text = c["text"];
    EXPECT_EQ(text::word_tokenize(text::lower(text)), c["tokens"].get<std::vector<std::string>>()) << text;
  }
}

TEST(Extraction, OverlapCountsPredictedNgramsWithMultiplicity) {
  const std::vector<int64_t> label = {1, 2, 3, 4, 5}, pred = {1, 2, 1, 2, 9};
  // bigrams of pred: 12 21 12 29; label set {12, 23, 34, 45}: 12 twice → 2/4.
  EXPECT_DOUBLE_EQ(eval::ngram_overlap(pred.data(), label.data(), 5, 2), 0.5);
  EXPECT_DOUBLE_EQ(eval::ngram_overlap(label.data(), label.data(), 5, 5), 1.0);
}

TEST(Extraction, DistinctRatioAndEntropy) {
  EXPECT_DOUBLE_EQ(eval::distinct_ratio({1, 1, 2, 3}), 0.75);
  EXPECT_DOUBLE_EQ(eval::unigram_entropy({1, 1, 2, 2}), 1.0);
  EXPECT_DOUBLE_EQ(eval::unigram_entropy({7, 7, 7}), 0.0);
  EXPECT_DOUBLE_EQ(eval::distinct_ratio({}), 0.0);
}

}  // namespace
}  // namespace lethe
