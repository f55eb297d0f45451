// GPT-2 BPE tokenizer against published golden vectors and HF `tokenizers` fixtures
// (tests/reference/make_tokenizer_fixtures.py), plus batching, file formats and bad input.
#include "text/tokenizer.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"
#include "text/bpe_vocab.h"
#include "text/csv.h"
#include "text/utf8.h"

#ifndef LETHE_SOURCE_DIR
#define LETHE_SOURCE_DIR "."
#endif

namespace lethe::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

fs::path shared_data() {
  return test::shared_data_dir().value_or(fs::path(LETHE_SOURCE_DIR) / ".." / "shared" / "data");
}

fs::path tokenizer_dir() {
  return shared_data() / "gpt2_tokenizer";
}

#define REQUIRE_SHARED_DATA()                                              \
  if (!fs::exists(tokenizer_dir() / "encoder.json"))                       \
  GTEST_SKIP() << "GPT-2 tokenizer files not found in " << tokenizer_dir() \
               << "; set LETHE_SHARED_DATA to the shared data directory"

const Tokenizer& gpt2() {
  static const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir());
  return tok;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// Where make_tokenizer_fixtures.py wrote its output: CTest runs it with --out <fixtures root>/tokenizer; a
// hand-run script may have written to the fixtures root itself.
std::optional<fs::path> fixture_dir() {
  const auto root = test::fixtures_dir();
  if (!root) return std::nullopt;
  for (const fs::path& dir : {*root / "tokenizer", *root})
    if (fs::exists(dir / "gpt2_tokenizer_ids.json")) return dir;
  return std::nullopt;
}

// The fixture's parsed JSON, or null when it is missing.
const json* fixture() {
  static const json data = fixture_dir() ? read_json(*fixture_dir() / "gpt2_tokenizer_ids.json") : json();
  return data.is_null() ? nullptr : &data;
}

#define REQUIRE_FIXTURE()                                                                                 \
  REQUIRE_SHARED_DATA();                                                                                  \
  if (fixture() == nullptr)                                                                               \
  GTEST_SKIP()                                                                                            \
      << "HF fixture gpt2_tokenizer_ids.json not found in $LETHE_FIXTURES or $LETHE_FIXTURES/tokenizer; " \
         "run tests/reference/make_tokenizer_fixtures.py --out DIR and set LETHE_FIXTURES=DIR"

// Runs f, expecting an InputError whose message contains every one of parts.
// A fresh directory under the system temp dir, removed again at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("lethe_bpe_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

// 256 byte tokens, then he, ll, hell, hello, <|endoftext|> at ids 256..260.
std::string small_vocab_json() {
  json v = json::object();
  for (int b = 0; b < 256; ++b) v[byte_level_alphabet()[b]] = b;
  int id = 256;
  for (const char* t : {"he", "ll", "hell", "hello", "<|endoftext|>"}) v[t] = id++;
  return v.dump();
}
constexpr const char* kSmallMerges = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n";

TEST(Gpt2Golden, AllPublishedVectors) {
  REQUIRE_SHARED_DATA();
  const json golden = read_json(tokenizer_dir() / "golden_gpt2_token_ids.json");
  ASSERT_EQ(golden["cases"].size(), 69u);
  int checked = 0;
  for (const auto& c : golden["cases"]) {
    const auto text = c["text"].get<std::string>();
    const bool special = c["allowed_special"].get<bool>();
    const Ids ids = gpt2().encode(text, special);
    EXPECT_EQ(ids, c["ids"].get<Ids>()) << "text: " << text;
    // Special-token ids decode to the token text, so every case round-trips.
    EXPECT_EQ(gpt2().decode(ids), text);
    ++checked;
  }
  EXPECT_EQ(checked, 69);
}

TEST(Tokenizer, BasicApi) {
  REQUIRE_SHARED_DATA();
  EXPECT_EQ(gpt2().eos_id(), 50256);
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().token_to_id("\xC4\xA0the"), 262);  // "Ġthe"
  EXPECT_EQ(gpt2().token_to_id("<|endoftext|>"), 50256);
  EXPECT_EQ(gpt2().token_to_id("not a token"), std::nullopt);
  EXPECT_EQ(gpt2().encode("hello <|endoftext|>", false), (Ids{31373, 1279, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(gpt2().decode(Ids{31373, 50256, 995}, true), "hello world");
  EXPECT_EQ(gpt2().decode(Ids{}), "");
  EXPECT_EQ(gpt2().encode(""), Ids{});
}

TEST(Gpt2Fixture, CsvRowsMatchHfTokenizers) {
  REQUIRE_FIXTURE();
  size_t rows = 0;
  for (const auto& [rel, expected] : (*fixture())["files"].items()) {
    const std::vector<std::string> texts = read_csv_column(shared_data() / rel, "text");
    ASSERT_EQ(texts.size(), expected.size()) << rel;
    int failures = 0;
    for (size_t i = 0; i < texts.size() && failures < 5; ++i) {
      const auto& e = expected[i];
      const bool same_text = texts[i] == e["text"].get_ref<const std::string&>();
      const Ids ids = gpt2().encode(texts[i]);
      const bool same_ids = ids == e["ids"].get<Ids>();
      const bool round_trip = gpt2().decode(ids) == texts[i];
      EXPECT_TRUE(same_text) << rel << " row " << i << ": CSV reader disagrees with Python's csv";
      EXPECT_TRUE(same_ids) << rel << " row " << i << ": ids differ from HF tokenizers";
      EXPECT_TRUE(round_trip) << rel << " row " << i << ": decode(encode(text)) != text";
      failures += !(same_text && same_ids && round_trip);
      ++rows;
    }
  }
  EXPECT_EQ(rows, 6992u);
}

TEST(Gpt2Fixture, SpecialTokensAndLongPiecesMatchHf) {
  REQUIRE_FIXTURE();
  for (const auto& c : (*fixture())["special_cases"]) {
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(gpt2().encode(text, true), c["ids_special"].get<Ids>()) << text;
    EXPECT_EQ(gpt2().encode(text, false), c["ids_plain"].get<Ids>()) << text;
    EXPECT_EQ(gpt2().decode(c["ids_plain"].get<Ids>()), text);
  }
}

TEST(Gpt2Fixture, DecodeMatchesHfIncludingBrokenUtf8) {
  REQUIRE_FIXTURE();
  for (const auto& c : (*fixture())["decode_cases"]) {
    const Ids ids = c["ids"].get<Ids>();
    EXPECT_EQ(gpt2().decode(ids), c["text"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(gpt2().decode(ids, true), c["text_skip_special"].get<std::string>()) << c["ids"].dump();
  }
}

TEST(Gpt2Fixture, HfTokenizerJsonLoadsAndAgrees) {
  REQUIRE_FIXTURE();
  const Tokenizer tok = Tokenizer::from_dir(*fixture_dir() / "gpt2_tokenizer_json");
  EXPECT_EQ(tok.vocab_size(), 50257);
  for (const auto& c : (*fixture())["special_cases"]) {
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), c["ids_special"].get<Ids>());
  }
  const auto& lambada = (*fixture())["files"]["icu/lambada.csv"];
  for (size_t i = 0; i < 200; ++i)
    EXPECT_EQ(tok.encode(lambada[i]["text"].get<std::string>()), lambada[i]["ids"].get<Ids>());
}

TEST(Tokenizer, HfAndTokenizerJsonLayoutsGiveSameIds) {
  REQUIRE_SHARED_DATA();
  TempDir hf, tj;
  fs::create_symlink(tokenizer_dir() / "encoder.json", hf.path / "vocab.json");
  fs::create_symlink(tokenizer_dir() / "vocab.bpe", hf.path / "merges.txt");
  // tokenizer.json with merges in the older "left right" string form.
  json model = {
      {"type", "BPE"}, {"dropout", nullptr}, {"vocab", read_json(tokenizer_dir() / "encoder.json")}};
  std::ifstream merges(tokenizer_dir() / "vocab.bpe");
  model["merges"] = json::array();
  for (std::string line; std::getline(merges, line);)
    if (!line.starts_with("#version")) model["merges"].push_back(line);
  const json root = {{"model", model},
                     {"normalizer", nullptr},
                     {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                     {"added_tokens", {{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}}}};
  tj.write("tokenizer.json", root.dump());
  const std::string text = "Hello <|endoftext|> world's 12345 \xF0\x9F\x98\x80 tokens\n\n";
  const Ids expected = gpt2().encode(text);
  EXPECT_EQ(Tokenizer::from_dir(hf.path).encode(text), expected);
  EXPECT_EQ(Tokenizer::from_dir(tj.path).encode(text), expected);
  EXPECT_EQ(Tokenizer::from_files(hf.path / "vocab.json", hf.path / "merges.txt").encode(text), expected);

  // add_prefix_space: a space before each stretch that does not start with one (RoBERTa-style files).
  json prefixed = root;
  prefixed["pre_tokenizer"]["add_prefix_space"] = true;
  tj.write("tokenizer.json", prefixed.dump());
  EXPECT_EQ(Tokenizer::from_dir(tj.path).encode("Hello<|endoftext|>world"),
            gpt2().encode(" Hello<|endoftext|> world"));
}

TEST(Tokenizer, ConcurrentEncodeMatchesSequential) {
  REQUIRE_SHARED_DATA();
  const auto texts = read_csv_column(shared_data() / "icu/validation_data/wikitext.csv", "text");
  const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir());  // fresh, empty cache
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(gpt2().encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (size_t i = 0; i < texts.size(); ++i) {
        const size_t k = (i + w * texts.size() / 4) % texts.size();  // different order per thread
        mismatches[w] += tok.encode(texts[k]) != expected[k];
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(Tokenizer, HugeInputsDoNotOverflowRegexStack) {
  REQUIRE_SHARED_DATA();
  for (const std::string& text :
       {std::string(1 << 20, 'a'), std::string(1 << 20, ' '), std::string(1 << 20, '.'),
        std::string(1 << 19, '\n') + "x", std::string(1 << 20, '7')}) {
    const Ids ids = gpt2().encode(text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(gpt2().decode(ids), text);
  }
}

TEST(Tokenizer, InvalidUtf8IsRejected) {
  REQUIRE_SHARED_DATA();
  test::expect_input_error([] { gpt2().encode("ok \xC3("); }, {"not valid UTF-8", "byte offset 3"});
  test::expect_input_error([] { gpt2().encode("\xED\xA0\x80"); }, {"byte offset 0"});  // a UTF-16 surrogate
}

TEST(Utf8, LossyRepairMatchesPythonReplace) {
  // Expected strings are Python's bytes.decode("utf-8", "replace"): one U+FFFD per maximal ill-formed part.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(to_valid_utf8("\xE2\x82"), r);
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);
  EXPECT_EQ(to_valid_utf8("\xF0\x90\x80"), r);
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), r + r);
  EXPECT_EQ(to_valid_utf8("a\xFF"
                          "b"),
            "a" + r + "b");
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(to_valid_utf8("\xE2\x82\xAC\xE2"), "\xE2\x82\xAC" + r);
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + r);
  EXPECT_EQ(to_valid_utf8("\xE0\x80\xAF"), r + r + r);
  EXPECT_EQ(utf8_valid_prefix("abcdefghij\xC3\xA9k\x80"), 13u);
  EXPECT_TRUE(is_valid_utf8("plain ASCII, then \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
}

TEST(Gpt2Batch, PadsAndTruncatesOnEitherSide) {
  REQUIRE_SHARED_DATA();
  const std::vector<std::string> texts = {"Hello world", "a b c d e", ""};
  // "Hello world" = [15496, 995]; "a b c d e" = [64, 275, 269, 288, 304].
  BatchEncoding b = gpt2().encode_batch(texts, {});
  EXPECT_EQ(b.ids,
            (std::vector<Ids>{{15496, 995, 50256, 50256, 50256}, {64, 275, 269, 288, 304}, Ids(5, 50256)}));
  EXPECT_EQ(b.attention_mask, (std::vector<Ids>{{1, 1, 0, 0, 0}, {1, 1, 1, 1, 1}, Ids(5, 0)}));

  b = gpt2().encode_batch(texts, {.max_length = 3, .pad_left = true, .truncate_left = false, .pad_id = 0});
  EXPECT_EQ(b.ids, (std::vector<Ids>{{0, 15496, 995}, {64, 275, 269}, {0, 0, 0}}));
  EXPECT_EQ(b.attention_mask, (std::vector<Ids>{{0, 1, 1}, {1, 1, 1}, {0, 0, 0}}));

  b = gpt2().encode_batch(texts, {.max_length = 4, .pad_left = false, .truncate_left = true});
  EXPECT_EQ(b.ids, (std::vector<Ids>{{15496, 995, 50256, 50256}, {275, 269, 288, 304}, Ids(4, 50256)}));
  EXPECT_EQ(b.attention_mask, (std::vector<Ids>{{1, 1, 0, 0}, {1, 1, 1, 1}, Ids(4, 0)}));

  EXPECT_TRUE(gpt2().encode_batch({}, {}).ids.empty());
  test::expect_input_error([] { gpt2().encode_batch({"x"}, {.max_length = -1}); }, {"max_length", "-1"});
  test::expect_input_error([] { gpt2().encode_batch({"x"}, {.pad_id = 50257}); }, {"pad_id", "50257"});
}

TEST(Gpt2Files, SmallVocabularyMerges) {
  TempDir d;
  d.write("vocab.json", small_vocab_json());
  d.write("merges.txt", kSmallMerges);
  const Tokenizer tok = Tokenizer::from_dir(d.path);
  EXPECT_EQ(tok.vocab_size(), 261);
  EXPECT_EQ(tok.eos_id(), 260);
  EXPECT_EQ(tok.encode("hello hell<|endoftext|>"), (Ids{259, 32, 258, 260}));
  EXPECT_EQ(tok.decode(tok.encode("hello hell")), "hello hell");
}

TEST(Gpt2Files, BadInputNamesTheFile) {
  TempDir d;
  const std::string dir = d.path.string();
  test::expect_input_error([&] { Tokenizer::from_dir(d.path / "nope"); }, {"nope", "not a directory"});
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {dir, "vocab.json + merges.txt"});

  const auto vocab = d.write("vocab.json", small_vocab_json());
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {"merges.txt", "missing"});
  const auto merges = d.write("merges.txt", "#version: 0.2\nh e\nl\n");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); },
                           {merges.string() + ":3", "\"l\"", "left right"});
  d.write("merges.txt", "#version: 0.2\nh e\nx yz\n");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); },
                           {merges.string() + ":3", "\"yz\"", "vocabulary"});
  d.write("merges.txt", "h e\nh e\n");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {merges.string() + ":2", "duplicate"});
  d.write("merges.txt", kSmallMerges);

  d.write("vocab.json", "{\"a\": 0, ");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "malformed JSON"});
  d.write("vocab.json", "[\"a\", \"b\"]");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "array", "JSON object"});
  d.write("vocab.json", "{\"a\": 0, \"b\": \"1\"}");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "\"b\"", "integer id"});
  d.write("vocab.json", "{\"a\": 0, \"b\": 2}");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "\"b\"", "dense"});
  d.write("vocab.json", "{\"a\": 0, \"b\": 0}");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "share id 0"});
  d.write("vocab.json", "{\"h\": 0, \"e\": 1, \"he\": 2}");
  d.write("merges.txt", "h e\n");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {vocab.string(), "byte token"});

  test::expect_input_error([&] { Tokenizer::from_files(d.path / "vocab.missing", merges); },
                           {"vocab.missing"});
  fs::remove(vocab);
  d.write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  test::expect_input_error([&] { Tokenizer::from_dir(d.path); }, {"tokenizer.json", "BPE"});
}

TEST(Gpt2Files, DecodeRejectsIdsOutsideTheVocabulary) {
  REQUIRE_SHARED_DATA();
  test::expect_input_error([] { gpt2().decode(Ids{15496, 50257}); }, {"50257", "vocab size 50257"});
  test::expect_input_error([] { gpt2().decode(Ids{-1}); }, {"-1", "vocab size 50257"});
}

}  // namespace
}  // namespace lethe::text
