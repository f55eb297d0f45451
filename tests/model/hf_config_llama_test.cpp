// Llama config.json: both rope layouts (transformers 4.x `rope_theta` + `rope_scaling`, 5.x
// `rope_parameters`), special-token forms, the presets through a write/read round trip, and the validation
// rules. Files written by transformers itself are read in causal_lm_parity_test (the fixtures), and ours are
// loaded by transformers there.
#include <stdlib.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/hf_config.h"
#include "model/presets.h"
#include "test_util.h"

namespace lethe::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A Llama-3.2-1B-Instruct-shaped file in transformers 4.45's layout.
constexpr const char* kLlama32 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 128256})";

class LlamaConfigTest : public ::testing::Test {
 protected:
  fs::path write(const json& j) const {
    const fs::path p = dir_.path() / "config.json";
    std::ofstream(p) << j.dump(2);
    return p;
  }
  LlamaConfig read(const json& j) const { return *read_hf_config(write(j)).llama(); }

  // kLlama32 with `edit` applied must be refused, naming the file and each piece.
  template <typename Edit>
  void expect_bad(Edit edit, std::initializer_list<std::string> pieces) const {
    json j = json::parse(kLlama32);
    edit(j);
    const fs::path p = write(j);
    std::vector<std::string> all(pieces);
    all.push_back(p.string());
    test::expect_input_error([&] { read_hf_config(p); }, all);
  }

  test::TempDir dir_;
};

TEST_F(LlamaConfigTest, ReadsTheTransformers4Layout) {
  const LlamaConfig c = read(json::parse(kLlama32));
  EXPECT_EQ(c.num_layers, 16);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim(), 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  // The preset describes the same model.
  test::expect_same_architecture(ModelConfig(c), preset("llama-3.2-1b"));
}

TEST_F(LlamaConfigTest, ReadsTheTransformers5LayoutAndOldTypeKey) {
  json j = json::parse(kLlama32);
  json rope = j["rope_scaling"];
  rope["rope_theta"] = 500000.0;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = rope;
  test::expect_same_architecture(ModelConfig(read(j)), preset("llama-3.2-1b"));
  // Before transformers 4.45 the kind was `type`; linear scaling needs only its factor.
  j = json::parse(kLlama32);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  const LlamaConfig linear = read(j);
  EXPECT_EQ(linear.rope_scaling.type, RopeType::kLinear);
  EXPECT_EQ(linear.rope_scaling.factor, 2.0);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(read(j).rope_scaling.type, RopeType::kNone);
}

TEST_F(LlamaConfigTest, SpecialTokenForms) {
  json j = json::parse(kLlama32);
  j["eos_token_id"] = 128009;
  EXPECT_EQ(read(j).eos_token_ids, std::vector<int64_t>{128009});
  j["eos_token_id"] = nullptr;
  j["pad_token_id"] = 5;
  EXPECT_TRUE(read(j).eos_token_ids.empty());
  EXPECT_EQ(read(j).pad_token_id, 5);
  j.erase("eos_token_id");
  j.erase("bos_token_id");
  EXPECT_EQ(read(j).eos_token_ids, std::vector<int64_t>{2});  // transformers' defaults
  EXPECT_EQ(read(j).bos_token_id, 1);
}

TEST_F(LlamaConfigTest, PresetsRoundTrip) {
  for (const std::string& name : preset_names()) {
    const ModelConfig p = preset(name);
    if (!p.llama()) continue;
    write_hf_config(dir_.path() / "config.json", p, "bfloat16");
    test::expect_same_architecture(read_hf_config(dir_.path() / "config.json"), p);
  }
}

TEST_F(LlamaConfigTest, RefusesWhatItCannotRun) {
  expect_bad([](json& j) { j["num_key_value_heads"] = 5; }, {"num_key_value_heads", "5", "32"});
  expect_bad([](json& j) { j["rope_scaling"].erase("low_freq_factor"); },
             {"rope_scaling.low_freq_factor", "missing"});
  expect_bad([](json& j) { j["rope_scaling"]["rope_type"] = "yarn"; }, {"rope_scaling.rope_type", "'yarn'"});
  expect_bad([](json& j) { j["rope_scaling"] = 8; }, {"rope_scaling", "object or null"});
  expect_bad([](json& j) { j["hidden_act"] = "gelu"; }, {"hidden_act", "'gelu'"});
  expect_bad([](json& j) { j.erase("intermediate_size"); }, {"intermediate_size", "missing"});
  expect_bad([](json& j) { j["eos_token_id"] = {1, "x"}; }, {"eos_token_id", "\"x\""});
  expect_bad([](json& j) { j["eos_token_id"] = 200000; }, {"eos_token_id", "200000"});
  expect_bad([](json& j) { j["tie_word_embeddings"] = "yes"; }, {"tie_word_embeddings", "true or false"});
  expect_bad([](json& j) { j["pretraining_tp"] = 0; }, {"pretraining_tp", "0"});
  expect_bad([](json& j) { j["model_type"] = "mistral"; }, {"model_type", "'mistral'", "llama"});
  expect_bad(
      [](json& j) {
        j.erase("head_dim");
        j["hidden_size"] = 2050;
      },
      {"hidden_size", "2050", "32"});
}

}  // namespace
}  // namespace lethe::model
