// tokenizer.json tokenizers (Llama-2 and Llama-3 layouts) against HF `tokenizers`: files trained at test time
// on TOFU by tests/reference/make_tokenizer_json_fixtures.py, ids and decodes compared on every TOFU question
// and answer, the ICU target texts and hand-written non-Latin, emoji and byte-fallback cases. Then the
// refusals: every component outside the implemented set is an InputError naming the file and field.
#include <fstream>
#include <optional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace lethe::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

std::optional<fs::path> fixture_dir() {
  return test::fixture_subdir("tokenizer_json", "cases.json");
}

const json& cases() {
  static const json data = [] {
    std::ifstream in(*fixture_dir() / "cases.json");
    return json::parse(in);
  }();
  return data;
}

#define REQUIRE_FIXTURE()                                                  \
  if (!fixture_dir())                                                      \
  GTEST_SKIP() << "tokenizer_json/cases.json not in $LETHE_FIXTURES; run " \
                  "tests/reference/make_tokenizer_json_fixtures.py"

class TokenizerJson : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerJson, IdsAndDecodeEqualHf) {
  REQUIRE_FIXTURE();
  const std::string name = GetParam();
  const Tokenizer tok = Tokenizer::from_dir(*fixture_dir() / name);
  const json& texts = cases()["texts"];
  const json& want = cases()[name];
  size_t wrong_ids = 0, wrong_decode = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto text = texts[i].get<std::string>();
    const Ids ids = tok.encode(text);
    const Ids expected = want["ids"][i].get<Ids>();
    if (ids != expected && ++wrong_ids <= 5)
      ADD_FAILURE() << name << " ids differ for text " << i << ": " << text;
    const std::string decoded = tok.decode(expected);
    if (decoded != want["decode"][i].get<std::string>() && ++wrong_decode <= 5)
      ADD_FAILURE() << name << " decode differs for text " << i << ": " << decoded;
    if (tok.decode(expected, true) != want["decode_skip"][i].get<std::string>() && ++wrong_decode <= 5)
      ADD_FAILURE() << name << " decode(skip_special) differs for text " << i;
  }
  EXPECT_EQ(wrong_ids, 0u) << "of " << texts.size() << " texts";
  EXPECT_EQ(wrong_decode, 0u);
  for (size_t i = 0; i < want["with_specials"].size(); ++i)
    EXPECT_EQ(tok.encode_with_specials(texts[i].get<std::string>()), want["with_specials"][i].get<Ids>())
        << i;
  for (size_t i = 0; i < want["random_ids"].size(); ++i)
    EXPECT_EQ(tok.decode(want["random_ids"][i].get<Ids>()), want["random_decode"][i].get<std::string>()) << i;
}

INSTANTIATE_TEST_SUITE_P(Layouts, TokenizerJson, testing::Values("llama2_legacy", "llama2_meta", "llama3"));

TEST(TokenizerJsonFile, CornerCasesEqualHf) {
  REQUIRE_FIXTURE();
  const json& edge = cases()["edge"];
  ASSERT_FALSE(edge.empty());
  for (const json& c : edge) {
    const auto name = c["tokenizer"].get<std::string>(), text = c["text"].get<std::string>();
    const Tokenizer tok = Tokenizer::from_json(*fixture_dir() / name / "tokenizer.json");
    EXPECT_EQ(tok.encode(text), c["ids"].get<Ids>()) << name << ": " << text;
    EXPECT_EQ(tok.encode(text, false), c["ids_no_special"].get<Ids>())
        << name << " (specials as text): " << text;
  }
}

TEST(TokenizerJsonFile, SpecialTokensAndEos) {
  REQUIRE_FIXTURE();
  const Tokenizer l2 = Tokenizer::from_dir(*fixture_dir() / "llama2_legacy");
  EXPECT_EQ(l2.bos_id(), 1);
  EXPECT_EQ(l2.eos_id(), 2);  // tokenizer_config.json's eos_token </s>
  EXPECT_TRUE(l2.is_special(1));
  EXPECT_FALSE(l2.is_special(3));  // <0x00> is an ordinary vocabulary token
  // Without a tokenizer_config.json the first known end token in the vocabulary is used.
  const Tokenizer l3 = Tokenizer::from_json(*fixture_dir() / "llama3" / "tokenizer.json");
  EXPECT_EQ(l3.eos_id(), *l3.token_to_id("<|end_of_text|>"));
  EXPECT_EQ(Tokenizer::from_dir(*fixture_dir() / "llama3").eos_id(), *l3.token_to_id("<|eot_id|>"));
  // allow_special = false: special tokens in the text are ordinary text.
  const Ids plain = l3.encode("<|eot_id|>", false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(l3.decode(plain), "<|eot_id|>");
}

// A copy of the fixture's llama2_legacy file with one field replaced, in a fresh directory.
fs::path with_field(const test::TempDir& dir, const json::json_pointer& field, const json& value) {
  std::ifstream in(*fixture_dir() / "llama2_legacy" / "tokenizer.json");
  json root = json::parse(in);
  root[field] = value;
  std::ofstream(dir.path() / "tokenizer.json") << root.dump();
  return dir.path();
}

TEST(TokenizerJsonFile, UnsupportedComponentsAreRefusedByName) {
  REQUIRE_FIXTURE();
  const struct {
    const char* pointer;
    json value;
    std::vector<std::string> message;
  } bad[] = {
      {"/normalizer", {{"type", "NFKC"}}, {"normalizer.type", "NFKC", "Prepend"}},
      {"/normalizer/normalizers/1/pattern", {{"Regex", "\\s"}}, {"normalizer.normalizers[1].pattern"}},
      {"/pre_tokenizer", {{"type", "Whitespace"}}, {"pre_tokenizer.type", "Whitespace", "Metaspace"}},
      {"/pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}, {"invert", false}},
       {"pre-tokenizer regex", "does not compile"}},
      {"/pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Contiguous"}, {"invert", false}},
       {"pre_tokenizer.behavior", "Contiguous"}},
      {"/pre_tokenizer",
       {{"type", "Split"}, {"pattern", {{"Regex", "\\h+"}}}, {"behavior", "Isolated"}, {"invert", false}},
       {"pre-tokenizer regex", "Oniguruma"}},
      {"/decoder/decoders/0", {{"type", "WordPiece"}}, {"decoder.decoders[0].type", "WordPiece"}},
      {"/post_processor", {{"type", "BertProcessing"}}, {"post_processor.type", "BertProcessing"}},
      {"/model/type", "Unigram", {"model.type", "Unigram"}},
      {"/model/dropout", 0.1, {"model.dropout"}},
      {"/model/unk_token", "<nope>", {"model.unk_token", "<nope>"}},
      {"/model/merges/0", 7, {"model.merges[0]"}},
      {"/added_tokens/0/lstrip", true, {"added_tokens[0]", "lstrip"}},
      {"/added_tokens/1/normalized", true, {"added_tokens[1].normalized"}},
  };
  for (const auto& b : bad) {
    const test::TempDir dir;
    SCOPED_TRACE(b.pointer);
    auto message = b.message;
    message.push_back("tokenizer.json");
    test::expect_input_error(
        [&] { Tokenizer::from_dir(with_field(dir, json::json_pointer(b.pointer), b.value)); }, message);
  }
  {  // a pattern that matches nothing somewhere: HF splits there, lethe refuses rather than differ
    const test::TempDir empty;
    const json split = {
        {"type", "Split"}, {"pattern", {{"Regex", "x*"}}}, {"behavior", "Isolated"}, {"invert", false}};
    const Tokenizer tok = Tokenizer::from_dir(with_field(empty, json::json_pointer("/pre_tokenizer"), split));
    test::expect_input_error([&] { tok.encode("ab"); }, {"empty string"});
  }
  const test::TempDir dir;
  std::ofstream(dir.path() / "tokenizer.json")
      << "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
  test::expect_input_error([&] { Tokenizer::from_dir(dir.path()); }, {"tokenizer.json", "end-of-sequence"});
  std::ofstream(dir.path() / "tokenizer_config.json") << "{\"eos_token\": \"</s>\"}";
  test::expect_input_error([&] { Tokenizer::from_dir(dir.path()); }, {"tokenizer_config.json", "</s>"});
}

}  // namespace
}  // namespace lethe::text
