#include "config/config.h"

#include <fstream>
#include <functional>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "model/presets.h"
#include "test_util.h"

namespace lethe {
namespace {

using model::AttentionKind;

// The InputError message `f` throws; a test failure when it throws nothing.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

void expect_contains(const std::string& message, std::initializer_list<std::string_view> parts) {
  for (std::string_view part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing from: " << message;
}

std::string set_error(std::vector<std::string> sets) {
  return error_of([&] { load_config(std::nullopt, sets); });
}

Config with_sets(std::vector<std::string> sets) {
  return load_config(std::nullopt, sets);
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        fmt::format("lethe_config_test_{}_{}",
                    ::testing::UnitTest::GetInstance()->current_test_info()->name(), std::random_device{}());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& text) {
    const auto path = dir_ / fmt::format("config{}.yaml", files_++);
    std::ofstream(path) << text;
    return path;
  }
  std::string file_error(const std::string& text, std::vector<std::string> sets = {}) {
    const auto path = write(text);
    return error_of([&] { load_config(path, sets); });
  }

  std::filesystem::path dir_;
  int files_ = 0;
};

// ---- Defaults -----------------------------------------------------------------------------------------
TEST(ConfigDefaults, NoFileGivesBuiltInDefaults) {
  const Config cfg = load_config(std::nullopt, {});
  EXPECT_EQ(cfg, Config{});
  EXPECT_EQ(cfg.model.preset, "gpt-neo-125m");
  EXPECT_EQ(cfg.model.dtype, Dtype::kFloat32);
  EXPECT_EQ(cfg.generate.options.max_new_tokens, 20);
  EXPECT_EQ(cfg.generate.options.num_beams, 1);
  EXPECT_EQ(cfg.generate.options.early_stopping, EarlyStopping::kFalse);
  EXPECT_TRUE(cfg.generate.options.eos_token_ids.empty());
  EXPECT_EQ(cfg.runtime.seed, 1234u);
  EXPECT_EQ(cfg.runtime.log_level, LogLevel::kInfo);
  EXPECT_EQ(cfg.runtime.device, Device::kAuto);
  EXPECT_EQ(cfg.run.name, "demo");
  EXPECT_EQ(cfg.run.output_dir, "results");
}

TEST(ConfigDefaults, DefaultYamlEqualsBuiltInsAndListsEveryKey) {
  const std::filesystem::path file = std::filesystem::path(LETHE_SOURCE_DIR) / "configs" / "default.yaml";
  EXPECT_EQ(load_config(file, {}), Config{});
  // Equality alone would pass with keys missing from the file; it is meant to document all of them.
  const YAML::Node root = YAML::LoadFile(file.string());
  for (const std::string& key : config_keys()) {
    YAML::Node node = root;  // walk model.llama.rope_theta one part at a time
    for (size_t start = 0, dot = 0; dot != std::string::npos && node.IsDefined(); start = dot + 1) {
      dot = key.find('.', start);
      node.reset(node[key.substr(start, dot == std::string::npos ? std::string::npos : dot - start)]);
    }
    EXPECT_TRUE(node.IsDefined()) << key << " missing from " << file;
  }
}

TEST(ConfigDefaults, ArchitectureDefaultsAreTheDefaultPreset) {
  const ModelSection m;
  test::expect_same_architecture(architecture(m), model::preset(m.preset));
}

TEST_F(ConfigFileTest, EmptyFileGivesDefaults) {
  EXPECT_EQ(load_config(write(""), {}), Config{});
}

// ---- Resolution order ---------------------------------------------------------------------------------
TEST_F(ConfigFileTest, PresetInFileAppliesBeforeExplicitKeysWrittenAboveIt) {
  const Config cfg = load_config(write("model:\n  gpt_neo:\n    hidden_size: 128\n  preset: tiny\n"), {});
  EXPECT_EQ(cfg.model.gpt_neo.arch.hidden_size, 128);  // explicit key wins although written first
  EXPECT_EQ(cfg.model.gpt_neo.arch.num_layers, 4);     // the rest comes from tiny
  EXPECT_EQ(cfg.model.gpt_neo.arch.max_position_embeddings, 512);
  EXPECT_EQ(cfg.model.gpt_neo.arch.window_size, 32);
}

TEST_F(ConfigFileTest, SetPresetReplacesFilePresetButFileKeysStillWin) {
  const Config cfg = load_config(write("model:\n  preset: tiny\n  gpt_neo:\n    num_layers: 6\n"),
                                 {"model.preset=gpt-neo-1.3B"});
  EXPECT_EQ(cfg.model.preset, "gpt-neo-1.3B");
  EXPECT_EQ(cfg.model.gpt_neo.arch.hidden_size, 2048);
  EXPECT_EQ(cfg.model.gpt_neo.arch.num_heads, 16);
  EXPECT_EQ(cfg.model.gpt_neo.arch.max_position_embeddings, 2048);
  EXPECT_EQ(cfg.model.gpt_neo.arch.num_layers, 6);
}

TEST_F(ConfigFileTest, SetOverridesFileAndLaterSetWins) {
  const auto file = write("generate:\n  num_beams: 3\n  max_new_tokens: 50\n");
  const Config cfg = load_config(file, {"generate.num_beams=5", "generate.num_beams=7"});
  EXPECT_EQ(cfg.generate.options.num_beams, 7);
  EXPECT_EQ(cfg.generate.options.max_new_tokens, 50);
}

TEST(ConfigResolution, EmptyPresetKeepsTheListedValues) {
  const Config cfg = with_sets({"model.gpt_neo.num_layers=2", "model.preset="});
  EXPECT_EQ(cfg.model.preset, "");
  EXPECT_EQ(cfg.model.gpt_neo.arch.num_layers, 2);
  EXPECT_EQ(cfg.model.gpt_neo.arch.hidden_size, ModelSection{}.gpt_neo.arch.hidden_size);
}

TEST(ConfigResolution, SetParsesEveryValueKind) {
  const Config cfg =
      with_sets({"runtime.seed=18446744073709551615", "model.dtype=bfloat16", "generate.early_stopping=never",
                 "tokenizer.path=/data/tok dir", "model.gpt_neo.attention_pattern=[local, global, local]",
                 "generate.length_penalty=-0.5", "runtime.log_level=debug", "runtime.device=cuda",
                 "generate.num_beams=+4"});
  EXPECT_EQ(cfg.runtime.seed, 18446744073709551615u);
  EXPECT_EQ(cfg.model.dtype, Dtype::kBFloat16);
  EXPECT_EQ(cfg.generate.options.early_stopping, EarlyStopping::kNever);
  EXPECT_EQ(cfg.tokenizer.path, "/data/tok dir");
  EXPECT_EQ(cfg.model.gpt_neo.attention_pattern,
            (std::vector{AttentionKind::kLocal, AttentionKind::kGlobal, AttentionKind::kLocal}));
  EXPECT_EQ(cfg.generate.options.length_penalty, -0.5);
  EXPECT_EQ(cfg.runtime.log_level, LogLevel::kDebug);
  EXPECT_EQ(cfg.runtime.device, Device::kCuda);
  EXPECT_EQ(cfg.generate.options.num_beams, 4);
  EXPECT_EQ(with_sets({"generate.early_stopping=true"}).generate.options.early_stopping,
            EarlyStopping::kTrue);
}

TEST_F(ConfigFileTest, BareOrNullStringMeansEmptyButQuotedTildeIsText) {
  const Config cfg = load_config(write("tokenizer:\n  path:\nmodel:\n  path: ~\nrun:\n  name: \"~\"\n"),
                                 {"model.dtype=bfloat16"});
  EXPECT_EQ(cfg.tokenizer.path, "");
  EXPECT_EQ(cfg.model.path, "");
  EXPECT_EQ(cfg.run.name, "~");
}

TEST(ConfigArchitecture, ExpandsPatternCyclicallyAndCopiesFields) {
  const Config cfg =
      with_sets({"model.preset=tiny", "model.gpt_neo.num_layers=5", "model.gpt_neo.intermediate_size=96",
                 "model.gpt_neo.attention_pattern=[global, local, local]"});
  const model::GptNeoConfig a = *architecture(cfg.model).gpt_neo();
  EXPECT_EQ(a.attention_layers,
            (std::vector{AttentionKind::kGlobal, AttentionKind::kLocal, AttentionKind::kLocal,
                         AttentionKind::kGlobal, AttentionKind::kLocal}));
  EXPECT_EQ(a.hidden_size, 64);
  EXPECT_EQ(a.inner_dim(), 96);
  EXPECT_EQ(a.window_size, 32);
}

TEST(ConfigArchitecture, ApplyPresetOverwritesOnlyArchitectureFields) {
  ModelSection m;
  m.path = "/ckpt";
  m.gpt_neo.arch.hidden_size = 8;
  apply_preset(m, "");
  EXPECT_EQ(m.gpt_neo.arch.hidden_size, 8);  // empty = keep the fields as they are
  apply_preset(m, "gpt-neo-2.7B");
  EXPECT_EQ(m.gpt_neo.arch.hidden_size, 2560);
  EXPECT_EQ(m.gpt_neo.arch.num_layers, 32);
  EXPECT_EQ(m.path, "/ckpt");
  EXPECT_EQ(m.gpt_neo.attention_pattern, (std::vector{AttentionKind::kGlobal, AttentionKind::kLocal}));
  EXPECT_THROW(apply_preset(m, "gpt-neo-350m"), InputError);
}

// ---- Dump ---------------------------------------------------------------------------------------------
TEST_F(ConfigFileTest, DumpLoadsBackToTheSameConfig) {
  // Strings that YAML would otherwise read as null, bool, number or a mapping.
  const Config cfg =
      with_sets({"model.preset=tiny", "model.gpt_neo.hidden_size=96", "model.gpt_neo.layer_norm_epsilon=1e-7",
                 "model.gpt_neo.initializer_range=0.1", "model.gpt_neo.attention_pattern=[local]",
                 "generate.early_stopping=true", "generate.length_penalty=2", "runtime.seed=99",
                 "run.name='true'", "run.output_dir='a: b # c'", "tokenizer.path='123'", "model.path='~'"});
  ASSERT_EQ(cfg.run.name, "true");
  const std::string text = dump_config(cfg);
  EXPECT_EQ(load_config(write(text), {}), cfg) << text;
  EXPECT_EQ(load_config(write(dump_config(Config{})), {}), Config{});
}

TEST(ConfigDump, ShowsResolvedValuesAndDocs) {
  const std::string text = dump_config(with_sets({"model.preset=tiny", "generate.num_beams=4"}));
  expect_contains(text, {"num_beams: 4  # beams for beam search", "hidden_size: 64", "preset: \"tiny\"",
                         "attention_pattern: [global, local]", "layer_norm_epsilon: 1e-05"});
}

TEST(ConfigKeys, ListsEveryFieldOnceInDottedForm) {
  const std::vector<std::string> keys = config_keys();
  EXPECT_EQ(keys.size(), 129u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  for (const char* key :
       {"model.preset", "model.gpt_neo.attention_pattern", "tokenizer.path", "generate.num_beams",
        "runtime.seed", "run.output_dir", "data.train_path", "train.global_batch_size", "zero.stage",
        "zero.reduce_bf16", "train.activation_checkpointing", "checkpoint.resume", "metrics.flush_seconds",
        "prep.rows"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
}

TEST_F(ConfigFileTest, LlamaPresetAndKeysResolveToItsArchitecture) {
  const Config cfg = load_config(write("model:\n  preset: llama-tiny\n  llama:\n    rope_theta: 500000\n"),
                                 {"model.llama.num_layers=3", "model.llama.eos_token_ids=[2, 5]"});
  EXPECT_EQ(cfg.model.family, model::Family::kLlama);
  model::LlamaConfig want = *model::preset("llama-tiny").llama();
  want.rope_theta = 500000;
  want.num_layers = 3;
  want.eos_token_ids = {2, 5};
  ASSERT_NE(architecture(cfg.model).llama(), nullptr);
  EXPECT_EQ(*architecture(cfg.model).llama(), want);
  EXPECT_EQ(load_config(std::nullopt, {}).model.family, model::Family::kGptNeo);
  // Dumped and read back: the nested sections round-trip.
  const auto again = write(dump_config(cfg));
  EXPECT_EQ(load_config(again, {}), cfg);
  expect_contains(set_error({"model.preset=llama-tiny", "model.llama.num_kv_heads=3"}),
                  {"model.llama.num_heads (4)", "model.llama.num_kv_heads (3)"});
  expect_contains(set_error({"model.family=mamba"}), {"model.family", "gpt_neo | llama"});
  expect_contains(set_error({"model.llama.rope_type=yarn"}),
                  {"model.llama.rope_type", "none | linear | llama3"});
}

TEST(ConfigOptimizer, OneSectionServesTrainAndUnlearn) {
  const Config cfg = with_sets(
      {"optimizer.lr=5e-6", "optimizer.beta2=0.98", "optimizer.schedule=linear", "optimizer.warmup_steps=3"});
  EXPECT_EQ(cfg.optimizer.adamw.lr, 5e-6);
  EXPECT_EQ(cfg.optimizer.adamw.beta2, 0.98);
  const zero::ScheduleOptions s = cfg.optimizer.schedule_options(10);
  EXPECT_EQ(s.kind, zero::Schedule::kLinear);
  EXPECT_EQ(s.warmup_steps, 3);
  EXPECT_EQ(s.total_steps, 10);
  expect_contains(set_error({"unlearn.lr=1e-3"}), {"unknown key 'unlearn.lr'"});
  expect_contains(set_error({"optimizer.warmup_steps=200"}),
                  {"optimizer.warmup_steps (200)", "train.steps (100)"});
  expect_contains(set_error({"train.lr=1e-3"}), {"did you mean 'optimizer.lr'"});
}

// ---- Unknown keys -------------------------------------------------------------------------------------
TEST_F(ConfigFileTest, UnknownKeyNamesFileLineKeyAndSuggestion) {
  const auto path = write("generate:\n  num_beam: 2\n");
  const std::string msg = error_of([&] { load_config(path, {}); });
  expect_contains(
      msg, {path.string() + ":2:3", "unknown key 'generate.num_beam'", "did you mean 'generate.num_beams'"});
}

TEST_F(ConfigFileTest, UnknownKeySuggestsTheSectionWhereItExists) {
  expect_contains(file_error("generate:\n  seed: 3\n"), {"'generate.seed'", "did you mean 'runtime.seed'"});
}

TEST_F(ConfigFileTest, UnknownSectionSuggestsSection) {
  expect_contains(file_error("generat:\n  num_beams: 2\n"),
                  {"unknown section 'generat'", "did you mean 'generate'"});
}

TEST_F(ConfigFileTest, UnknownKeyWithoutCloseMatchListsValidKeys) {
  expect_contains(
      file_error("generate:\n  zzzzzzzz: 1\n"),
      {"unknown key 'generate.zzzzzzzz'", "valid keys in 'generate'", "num_beams", "early_stopping"});
}

TEST(ConfigErrors, UnknownSetKeySuggestsFullPath) {
  expect_contains(set_error({"generate.num_beam=2"}),
                  {"--set generate.num_beam=2", "did you mean 'generate.num_beams'"});
  expect_contains(set_error({"num_beams=2"}),
                  {"unknown key 'num_beams'", "did you mean 'generate.num_beams'"});
  expect_contains(set_error({"generate.num_beams.x=2"}), {"generate.num_beams expects an integer"});
  expect_contains(set_error({"model.llama.rope_thta=5e5"}), {"did you mean 'model.llama.rope_theta'"});
}

TEST_F(ConfigFileTest, DuplicateKeyIsRejected) {
  expect_contains(file_error("generate:\n  num_beams: 2\n  num_beams: 3\n"),
                  {":3:3", "duplicate key 'generate.num_beams'"});
}

// ---- Wrong types --------------------------------------------------------------------------------------
TEST(ConfigErrors, IntegersRejectRealsTextOverflowAndNull) {
  for (const char* value : {"3.5", "abc", "99999999999999999999", "1e3", "5x"})
    expect_contains(set_error({fmt::format("generate.max_new_tokens={}", value)}),
                    {"generate.max_new_tokens", "expects an integer", fmt::format("'{}'", value)});
  // threads is an int: fits int64 but not int.
  expect_contains(set_error({"runtime.threads=3000000000"}), {"expects an integer", "'3000000000'"});
  expect_contains(set_error({"generate.num_beams="}), {"expects an integer", "got nothing"});
  expect_contains(set_error({"runtime.seed=-1"}), {"runtime.seed", "expects a non-negative integer", "'-1'"});
}

TEST(ConfigErrors, RealsRejectTextAndNonFinite) {
  for (const char* value : {"abc", "inf", "nan", "1.5.2"})
    expect_contains(set_error({fmt::format("generate.length_penalty={}", value)}),
                    {"generate.length_penalty", "expects a finite number"});
}

TEST(ConfigErrors, EnumsListTheValidNames) {
  expect_contains(set_error({"model.dtype=fp16"}), {"model.dtype", "'fp16'", "float32 | bfloat16"});
  expect_contains(set_error({"generate.early_stopping=yes"}), {"true | false | never", "'yes'"});
  expect_contains(set_error({"model.gpt_neo.attention_pattern=[global, lokal]"}),
                  {"'lokal'", "global | local"});
}

TEST(ConfigErrors, StructureMismatchesNameTheExpectedShape) {
  expect_contains(set_error({"model.gpt_neo.attention_pattern=global"}),
                  {"model.gpt_neo.attention_pattern expects a list"});
  expect_contains(set_error({"generate.num_beams=[1, 2]"}), {"expects an integer", "[1, 2]"});
}

TEST_F(ConfigFileTest, SectionAndTopLevelMustBeMappings) {
  expect_contains(file_error("generate: 3\n"), {":1:11", "'generate' must be a mapping"});
  expect_contains(file_error("- a\n- b\n"), {"expected a mapping of sections", "generate"});
}

TEST(ConfigScalars, BoolsAcceptOnlyLowercaseTrueFalse) {
  bool b = false;
  EXPECT_TRUE(parse_scalar("true", b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(parse_scalar("false", b));
  EXPECT_FALSE(b);
  for (const char* text : {"True", "yes", "on", "1", "", "truex"})
    EXPECT_FALSE(parse_scalar(text, b)) << text;
  EXPECT_EQ(expected_type<bool>(), "true or false");
}

TEST(ConfigScalars, RealsFormatToTextThatReadsBackExactly) {
  for (double v : {1.0, 0.1, 1e-5, -2.5e300, 1.0 / 3}) {
    double back = 0;
    ASSERT_TRUE(parse_scalar(format_scalar(v), back)) << format_scalar(v);
    EXPECT_EQ(back, v);
  }
  EXPECT_EQ(format_scalar(1.0), "1.0");
}

TEST(ConfigScalars, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("num_beam", "num_beams"), 1u);
}

// ---- Ranges and cross-field rules ---------------------------------------------------------------------
TEST(ConfigErrors, OutOfRangeNamesKeyValueAndAllowedRange) {
  expect_contains(set_error({"generate.num_beams=0"}), {"generate.num_beams", "'0'", "must be in [1, 64]"});
  expect_contains(set_error({"generate.num_beams=65"}), {"'65'", "[1, 64]"});
  expect_contains(set_error({"model.llama.pad_token_id=-2"}), {"'-2'", "must be >= -1"});
  expect_contains(set_error({"model.gpt_neo.layer_norm_epsilon=0"}),
                  {"model.gpt_neo.layer_norm_epsilon", "must be > 0"});
  expect_contains(set_error({"model.gpt_neo.window_size=0"}), {"model.gpt_neo.window_size", "must be >= 1"});
  expect_contains(set_error({"run.name="}), {"run.name", "must not be empty"});
  expect_contains(set_error({"model.gpt_neo.attention_pattern=[]"}),
                  {"model.gpt_neo.attention_pattern", "must not be empty"});
  expect_contains(set_error({"model.preset=gpt-neo-7B"}),
                  {"'gpt-neo-7B'", "gpt-neo-125m", "gpt-neo-2.7B", "tiny"});
}

TEST_F(ConfigFileTest, OutOfRangeInFilePointsAtTheValue) {
  expect_contains(file_error("runtime:\n  threads: -3\n"), {":2:12", "runtime.threads", "'-3'", ">= 0"});
}

TEST(ConfigErrors, CrossFieldRulesNameBothKeys) {
  expect_contains(set_error({"model.gpt_neo.hidden_size=100"}),
                  {"model.gpt_neo.hidden_size (100)", "model.gpt_neo.num_heads (12)"});
  expect_contains(set_error({"model.preset=tiny", "model.gpt_neo.vocab_size=1000"}),
                  {"model.gpt_neo.eos_token_id", "vocab_size (1000)"});
}

TEST(ConfigErrors, ValidateConfigChecksConfigsBuiltInCode) {
  Config cfg;
  EXPECT_NO_THROW(validate_config(cfg));
  cfg.generate.options.num_beams = 0;
  expect_contains(error_of([&] { validate_config(cfg); }), {"invalid config: generate.num_beams", "[1, 64]"});
}

// ---- Syntax and files ---------------------------------------------------------------------------------
TEST(ConfigErrors, SetSyntaxErrorsShowTheExpectedForm) {
  for (const char* bad : {"generate.num_beams", "=3", "model.=3", ".x=1", "a..b=1"})
    expect_contains(set_error({bad}), {fmt::format("--set {}", bad), "--set section.key=value"});
  expect_contains(set_error({"model.gpt_neo.attention_pattern=[global,"}),
                  {"--set model.gpt_neo.attention_pattern", "not a valid YAML"});
}

TEST_F(ConfigFileTest, YamlSyntaxErrorGivesFileLineAndColumn) {
  const auto path = write("model:\n  preset: tiny\n   bad: 1\n");
  expect_contains(error_of([&] { load_config(path, {}); }), {path.string() + ":3:7", "YAML syntax error"});
}

TEST_F(ConfigFileTest, MissingFileOrDirectoryIsNamed) {
  expect_contains(error_of([&] { load_config(dir_ / "nope.yaml", {}); }), {"nope.yaml", "does not exist"});
  expect_contains(error_of([&] { load_config(dir_, {}); }), {dir_.string(), "is a directory"});
}

// ---- Presets ------------------------------------------------------------------------------------------
TEST(ModelPresets, ReleasedSizesMatchPublishedParameterCounts) {
  EXPECT_EQ(model::preset("gpt-neo-125m").parameter_count(), 125'198'592);
  EXPECT_EQ(model::preset("gpt-neo-1.3B").parameter_count(), 1'315'575'808);
  EXPECT_EQ(model::preset("gpt-neo-2.7B").parameter_count(), 2'651'307'520);
  // The Llama model cards' counts (Llama-3.2 ties its head; Llama-2 does not).
  EXPECT_EQ(model::preset("llama-3.2-1b").parameter_count(), 1'235'814'400);
  EXPECT_EQ(model::preset("llama-3.2-3b").parameter_count(), 3'212'749'824);
  EXPECT_EQ(model::preset("llama-2-7b").parameter_count(), 6'738'415'616);
}

TEST(ModelPresets, TinyIsSmallAndAlternating) {
  const model::GptNeoConfig t = *model::preset("tiny").gpt_neo();
  EXPECT_EQ(t.num_layers, 4);
  EXPECT_EQ(t.hidden_size, 64);
  EXPECT_EQ(t.num_heads, 4);
  EXPECT_EQ(t.window_size, 32);
  EXPECT_EQ(t.max_position_embeddings, 512);
  EXPECT_EQ(t.attention_layers, model::alternating_attention(4));
  EXPECT_LT(model::ModelConfig(t).parameter_count(), 4'000'000);
}

TEST(ModelPresets, EveryNameResolvesAndUnknownNamesAreListed) {
  EXPECT_EQ(model::preset_names().size(), 8u);
  for (const std::string& name : model::preset_names()) {
    const model::ModelConfig preset = model::preset(name);
    // Going through the config must reproduce the preset exactly (GPT-Neo's pattern compression included).
    test::expect_same_architecture(architecture(with_sets({"model.preset=" + name}).model), preset);
    if (const model::LlamaConfig* l = preset.llama()) {
      EXPECT_EQ(l->num_heads % l->num_kv_heads, 0) << name;
      continue;
    }
    const model::GptNeoConfig p = *preset.gpt_neo();
    EXPECT_EQ(p.hidden_size % p.num_heads, 0) << name;
    EXPECT_EQ(static_cast<int64_t>(p.attention_layers.size()), p.num_layers) << name;
  }
  expect_contains(error_of([] { model::preset("gpt-neo-350m"); }), {"gpt-neo-350m", "gpt-neo-125m", "tiny"});
}

}  // namespace
}  // namespace lethe
