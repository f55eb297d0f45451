// BERT pieces against the Python oracle (tests/reference/make_bert_fixtures.py): WordPiece ids against HF's
// BertTokenizer, an encoder layer's output and MiniLM-style mean-pooled sentence embeddings against
// transformers' BertModel, and BERTScore against bert_score 0.3.13 — all on a tiny random BERT whose
// WordPiece vocabulary was trained offline on the ICU target texts.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eval/bertscore.h"
#include "model/bert.h"
#include "prep/sentence_embedder.h"
#include "test_util.h"
#include "text/wordpiece.h"

namespace lethe {
namespace {
namespace fs = std::filesystem;

class BertOracle : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = test::fixtures_dir();
    if (!dir) GTEST_SKIP() << "LETHE_FIXTURES unset: run through ctest (it builds the fixtures first)";
    dir_ = *dir / "bert";
    ASSERT_TRUE(fs::is_directory(dir_)) << dir_;
    std::ifstream in(dir_ / "bert_expected.json");
    j_ = nlohmann::json::parse(in);
    exp_ = test::load_tensors(dir_ / "bert_expected.safetensors");
  }
  fs::path dir_;
  nlohmann::json j_;
  std::map<std::string, torch::Tensor> exp_;
};

TEST_F(BertOracle, WordPieceIdsEqualHfTokenizer) {
  // HF's Rust and Python tokenizers differ on a few exotic characters (final sigma, unassigned code points):
  // the folder's tokenizer.json must give the Rust tokenizer's ids, vocab.txt alone the Python
  // BasicTokenizer's (recorded as ids_legacy where they differ).
  const text::WordPieceTokenizer fast = text::WordPieceTokenizer::from_dir(dir_ / "bert");
  test::TempDir legacy;
  for (const char* f : {"vocab.txt", "tokenizer_config.json"})
    fs::copy_file(dir_ / "bert" / f, legacy.path() / f);
  const text::WordPieceTokenizer slow = text::WordPieceTokenizer::from_dir(legacy.path());
  ASSERT_GE(j_["wordpiece"].size(), 60u);
  for (const auto& c : j_["wordpiece"]) {
    const std::string t = c["text"].get<std::string>();
    EXPECT_EQ(fast.encode(t), c["ids"].get<std::vector<int32_t>>())
        << c["text"] << "\nlethe pieces: " << nlohmann::json(fast.tokenize(t)).dump()
        << "\nHF pieces:    " << c.value("tokens", nlohmann::json()).dump();
    EXPECT_EQ(slow.encode(t), c.value("ids_legacy", c["ids"]).get<std::vector<int32_t>>()) << c["text"];
  }
}

TEST_F(BertOracle, EncoderLayerAndSentenceEmbeddingsMatchTransformers) {
  const model::Bert three = model::Bert::load(dir_ / "bert", 3);
  const torch::Tensor ids = exp_.at("layer3_ids");
  const torch::Tensor got = three.forward(ids, torch::ones_like(ids));
  EXPECT_LE((got - exp_.at("layer3")).abs().max().item<double>(), 1e-5);

  // A plain BERT folder (no modules.json): mean pooling over real tokens, L2-normalised.
  const prep::SentenceEmbedder embedder = prep::SentenceEmbedder::load(dir_ / "bert", 256);
  const auto texts = j_["embed_texts"].get<std::vector<std::string>>();
  const torch::Tensor e = embedder.embed(texts, 4);
  EXPECT_LE((e - exp_.at("embeddings")).abs().max().item<double>(), 1e-5);
}

TEST_F(BertOracle, BertScoreEqualsBertScorePackage) {
  const auto& b = j_["bertscore"];
  const eval::BertScorer scorer(dir_ / "bert", b["num_layers"].get<int64_t>());
  const auto got =
      scorer.score(b["cands"].get<std::vector<std::string>>(), b["refs"].get<std::vector<std::string>>(), 4);
  const auto p = b["P"].get<std::vector<double>>(), r = b["R"].get<std::vector<double>>(),
             f = b["F"].get<std::vector<double>>();
  ASSERT_EQ(got.size(), p.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i][0], p[i], 1e-5) << i;
    EXPECT_NEAR(got[i][1], r[i], 1e-5) << i;
    EXPECT_NEAR(got[i][2], f[i], 1e-5) << i;
  }
}

}  // namespace
}  // namespace lethe
