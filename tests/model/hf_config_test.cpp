// GPT-Neo config.json: the released EleutherAI/gpt-neo-125M file, round trips, and every validation rule.
// With LETHE_PYTHON set (a python with transformers), also checks both directions against GPTNeoConfig.
#include "model/hf_config.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"

namespace lethe::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// EleutherAI/gpt-neo-125M's config.json as published (written by transformers 4.9: integer dropouts,
// GPT-2 summary_* fields lethe ignores).
constexpr const char* kGptNeo125M = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPTNeoForCausalLM"],
  "attention_dropout": 0,
  "attention_layers": ["global", "local", "global", "local", "global", "local",
                       "global", "local", "global", "local", "global", "local"],
  "attention_types": [[["global", "local"], 6]],
  "bos_token_id": 50256,
  "embed_dropout": 0,
  "eos_token_id": 50256,
  "gradient_checkpointing": false,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": null,
  "layer_norm_epsilon": 1e-05,
  "max_position_embeddings": 2048,
  "model_type": "gpt_neo",
  "num_heads": 12,
  "num_layers": 12,
  "resid_dropout": 0,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "transformers_version": "4.9.0.dev0",
  "use_cache": true,
  "vocab_size": 50257,
  "window_size": 256
})";

class HfConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lethe_cfg_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const json& j) const {
    const fs::path p = dir_ / "config.json";
    std::ofstream(p) << j.dump(2);
    return p;
  }

  // The 125M config with `edit` applied must be rejected with a message naming the file and each piece.
  template <typename Edit>
  void expect_bad(Edit edit, std::initializer_list<std::string> pieces) const {
    json j = json::parse(kGptNeo125M);
    edit(j);
    const fs::path p = write(j);
    try {
      read_hf_config(p);
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      for (const auto& piece : pieces) EXPECT_NE(msg.find(piece), std::string::npos) << piece << " | " << msg;
    }
  }

  fs::path dir_;
};

// A non-default shape whose attention layout is not a single alternating run.
GptNeoConfig unusual_config() {
  GptNeoConfig c;
  c.vocab_size = 1000;
  c.max_position_embeddings = 128;
  c.hidden_size = 64;
  c.num_layers = 5;
  c.num_heads = 4;
  c.intermediate_size = 100;
  c.window_size = 16;
  c.layer_norm_epsilon = 1e-6;
  c.initializer_range = 0.01;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  using enum AttentionKind;
  c.attention_layers = {kGlobal, kGlobal, kGlobal, kLocal, kGlobal};
  return c;
}

TEST_F(HfConfigTest, ReadsReleasedGptNeo125M) {
  const GptNeoConfig c = *read_hf_config(write(json::parse(kGptNeo125M))).gpt_neo();
  GptNeoConfig want;  // the struct's defaults are the 125M shape
  want.attention_layers = alternating_attention(12);
  test::expect_same_architecture(c, want);
  EXPECT_EQ(c.inner_dim(), 3072);
  EXPECT_EQ(c.head_dim(), 64);
}

TEST_F(HfConfigTest, RoundTripsAndWritesTransformersLayout) {
  GptNeoConfig base;
  base.attention_layers = alternating_attention(12);
  for (const GptNeoConfig& c : {base, unusual_config()}) {
    const fs::path p = dir_ / "config.json";
    write_hf_config(p, c);
    test::expect_same_architecture(read_hf_config(p), c);
  }
  write_hf_config(dir_ / "config.json", base);
  std::ifstream in(dir_ / "config.json");
  const json j = json::parse(in);
  EXPECT_EQ(j["attention_types"], json::parse(R"([[["global", "local"], 6]])"));
  EXPECT_EQ(j["architectures"], json::parse(R"(["GPTNeoForCausalLM"])"));
  EXPECT_EQ(j["model_type"], "gpt_neo");
  EXPECT_TRUE(j["intermediate_size"].is_null());
  EXPECT_EQ(j["attention_layers"].size(), 12u);
  EXPECT_EQ(j["dtype"], "float32");
  EXPECT_EQ(j["resid_dropout"], 0.0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 1);  // no .tmp left

  write_hf_config(dir_ / "config.json", unusual_config());
  std::ifstream in2(dir_ / "config.json");
  EXPECT_EQ(json::parse(in2)["attention_types"],
            json::parse(R"([[["global"], 3], [["local"], 1], [["global"], 1]])"));

  GptNeoConfig broken = base;
  broken.num_layers = 3;
  EXPECT_THROW(write_hf_config(dir_ / "config.json", broken), std::invalid_argument);
}

TEST_F(HfConfigTest, RejectsInvalidConfigs) {
  try {
    json j = json::parse(kGptNeo125M);
    j["model_type"] = "gpt2";
    read_hf_config(write(j));
    ADD_FAILURE() << "gpt2 accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "config.json").string() +
                                         ": model_type 'gpt2' is not supported; lethe loads 'gpt_neo' "
                                         "(GPTNeoForCausalLM) and 'llama' (LlamaForCausalLM)");
  }
  expect_bad([](json& j) { j.erase("model_type"); }, {"model_type is missing"});
  expect_bad([](json& j) { j["attention_types"] = json::parse(R"([[["global", "local"], 5]])"); },
             {"attention_types", "expands to 10 layers but num_layers is 12"});
  expect_bad([](json& j) { j["attention_types"] = json::parse(R"([[["global"], 1000000000000000000000]])"); },
             {"attention_types"});
  expect_bad([](json& j) { j["attention_types"] = json::parse(R"([[["global", "sparse"], 6]])"); },
             {"\"sparse\"", "\"global\" or \"local\""});
  expect_bad([](json& j) { j["attention_types"] = json::parse(R"([["global", 12]])"); },
             {"[[kinds...], count]"});
  expect_bad([](json& j) { j.erase("attention_types"); }, {"attention_types is missing"});
  expect_bad([](json& j) { j.erase("hidden_size"); }, {"hidden_size is missing"});
  expect_bad([](json& j) { j["hidden_size"] = "768"; }, {"hidden_size must be an integer", "string"});
  expect_bad([](json& j) { j["hidden_size"] = 768.0; }, {"hidden_size must be an integer"});
  expect_bad([](json& j) { j["num_heads"] = 0; }, {"num_heads is 0"});
  expect_bad([](json& j) { j["num_heads"] = 7; }, {"hidden_size 768 is not divisible by num_heads 7"});
  expect_bad([](json& j) { j["activation_function"] = "relu"; }, {"activation_function 'relu'", "gelu_new"});
  expect_bad([](json& j) { j["layer_norm_epsilon"] = "tiny"; }, {"layer_norm_epsilon must be a number"});
  expect_bad([](json& j) { j["layer_norm_epsilon"] = 0; }, {"layer_norm_epsilon is 0"});
  expect_bad([](json& j) { j["eos_token_id"] = json::array({50256}); }, {"eos_token_id must be an integer"});
  expect_bad([](json& j) { j["bos_token_id"] = 60000; }, {"bos_token_id is 60000"});
  expect_bad([](json& j) { j["intermediate_size"] = -1; }, {"intermediate_size is -1"});
  expect_bad([](json& j) { j = json::array(); }, {"expected a JSON object"});

  // dump() recurses: messages must not dump a hostile, deeply nested value.
  std::ofstream(dir_ / "deep.json") << R"({"model_type": "gpt_neo", "vocab_size": )"
                                    << std::string(1'000'000, '[') << std::string(1'000'000, ']') << "}";
  EXPECT_THROW(read_hf_config(dir_ / "deep.json"), InputError);
  std::ofstream(dir_ / "bad.json") << "{\"model_type\": ";
  EXPECT_THROW(read_hf_config(dir_ / "bad.json"), InputError);
  EXPECT_THROW(read_hf_config(dir_ / "absent.json"), InputError);
}

TEST_F(HfConfigTest, AcceptsAliasesAndDefaults) {
  json j = json::parse(kGptNeo125M);
  j["num_hidden_layers"] = j["num_layers"];
  j["num_attention_heads"] = j["num_heads"];
  for (const char* k : {"num_layers", "num_heads", "intermediate_size", "window_size", "layer_norm_epsilon",
                        "activation_function", "bos_token_id", "eos_token_id", "initializer_range"})
    j.erase(k);
  GptNeoConfig want;
  want.attention_layers = alternating_attention(12);
  test::expect_same_architecture(read_hf_config(write(j)), want);
}

constexpr const char* kTransformersScript = R"PY(
import json, sys
from transformers import GPTNeoConfig
mode, d = sys.argv[1], sys.argv[2]
if mode == "write":
    GPTNeoConfig(vocab_size=1000, max_position_embeddings=128, hidden_size=64, num_layers=5, num_heads=4,
                 intermediate_size=100, window_size=16, layer_norm_epsilon=1e-6, initializer_range=0.01,
                 bos_token_id=1, eos_token_id=2,
                 attention_types=[[["global"], 3], [["local"], 1], [["global"], 1]]).save_pretrained(d)
else:
    c = GPTNeoConfig.from_pretrained(d)
    got = {k: getattr(c, k) for k in ["vocab_size", "max_position_embeddings", "hidden_size", "num_layers",
           "num_heads", "intermediate_size", "window_size", "layer_norm_epsilon", "initializer_range",
           "bos_token_id", "eos_token_id", "attention_layers", "activation_function"]}
    want = dict(vocab_size=1000, max_position_embeddings=128, hidden_size=64, num_layers=5, num_heads=4,
                intermediate_size=100, window_size=16, layer_norm_epsilon=1e-6, initializer_range=0.01,
                bos_token_id=1, eos_token_id=2, activation_function="gelu_new",
                attention_layers=["global", "global", "global", "local", "global"])
    assert got == want, (got, want)
    assert str(c.dtype) == "torch.float32", c.dtype
    assert c.architectures == ["GPTNeoForCausalLM"], c.architectures
    # Re-saved by transformers, the file must hold exactly our fields (less its version stamp and the legacy
    # torch_dtype alias, which transformers >= 4.56 no longer writes).
    c.save_pretrained(d + "/resaved")
    ours = json.load(open(d + "/config.json"))
    theirs = json.load(open(d + "/resaved/config.json"))
    ours.pop("torch_dtype"); theirs.pop("transformers_version")
    assert ours == theirs, (ours, theirs)
)PY";

TEST_F(HfConfigTest, InteroperatesWithTransformers) {
  const auto py = test::python();
  if (!py) GTEST_SKIP() << "set LETHE_PYTHON to a python with transformers to run";
  const std::string& python = *py;
  std::ofstream(dir_ / "check.py") << kTransformersScript;
  const auto run = [&](const std::string& mode, const fs::path& d) {
    return std::system(
        fmt::format("'{}' '{}' {} '{}'", python, (dir_ / "check.py").string(), mode, d.string()).c_str());
  };
  // transformers -> lethe
  const fs::path theirs = dir_ / "theirs";
  ASSERT_EQ(run("write", theirs), 0);
  test::expect_same_architecture(read_hf_config(theirs / "config.json"), unusual_config());
  // lethe -> transformers
  const fs::path ours = dir_ / "ours";
  fs::create_directory(ours);
  write_hf_config(ours / "config.json", unusual_config());
  EXPECT_EQ(run("check", ours), 0);
}

}  // namespace
}  // namespace lethe::model
