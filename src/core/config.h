// lethe's typed configuration. Each section is a plain struct with defaults whose `visit` lists its fields
// once (see config_schema.h); loading YAML, dumping it, `--set` overrides and key listing are all driven by
// that list, so code reads `cfg.generate.num_beams`, never a string lookup.
//
// Adding a section: write the struct (fields + visit), add a member to Config and one `v.section(...)` line
// to Config::visit.
//
// Resolution order: built-in defaults -> model preset -> YAML file -> `--set` overrides. The preset is
// applied first even when the file or a `--set` names it after explicit architecture keys, so explicit keys
// always win over the preset. configs/default.yaml spells out the defaults (a test keeps them equal).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config_schema.h"
#include "model/generate_options.h"
#include "model/gpt_neo_config.h"
#include "model/presets.h"

namespace lethe {

enum class Dtype { kFloat32, kBFloat16 };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class Device { kCpu, kCuda };
enum class LrSchedule { kConstant, kLinear, kCosine };
using model::EarlyStopping;  // true | false | never, HF semantics (model/generate_options.h)

template <>
struct EnumNames<Dtype> {
  static constexpr std::pair<Dtype, std::string_view> values[] = {{Dtype::kFloat32, "float32"},
                                                                  {Dtype::kBFloat16, "bfloat16"}};
};
template <>
struct EnumNames<LogLevel> {
  static constexpr std::pair<LogLevel, std::string_view> values[] = {{LogLevel::kTrace, "trace"},
                                                                     {LogLevel::kDebug, "debug"},
                                                                     {LogLevel::kInfo, "info"},
                                                                     {LogLevel::kWarn, "warn"},
                                                                     {LogLevel::kError, "error"}};
};
template <>
struct EnumNames<Device> {
  static constexpr std::pair<Device, std::string_view> values[] = {{Device::kCpu, "cpu"},
                                                                   {Device::kCuda, "cuda"}};
};
template <>
struct EnumNames<LrSchedule> {
  static constexpr std::pair<LrSchedule, std::string_view> values[] = {
      {LrSchedule::kConstant, "constant"}, {LrSchedule::kLinear, "linear"}, {LrSchedule::kCosine, "cosine"}};
};
template <>
struct EnumNames<EarlyStopping> {
  static constexpr std::pair<EarlyStopping, std::string_view> values[] = {
      {EarlyStopping::kTrue, "true"}, {EarlyStopping::kFalse, "false"}, {EarlyStopping::kNever, "never"}};
};
template <>
struct EnumNames<model::AttentionKind> {
  static constexpr std::pair<model::AttentionKind, std::string_view> values[] = {
      {model::AttentionKind::kGlobal, "global"}, {model::AttentionKind::kLocal, "local"}};
};

struct ModelSection {
  std::string preset = "gpt-neo-125m";
  std::string path;
  Dtype dtype = Dtype::kFloat32;
  // Architecture; the defaults are GPT-Neo 125M, i.e. the default preset.
  int64_t vocab_size = 50257;
  int64_t max_position_embeddings = 2048;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 0;
  int64_t window_size = 256;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  int64_t bos_token_id = 50256;
  int64_t eos_token_id = 50256;
  // Repeated cyclically over the layers: [global, local] on 4 layers = global, local, global, local.
  std::vector<model::AttentionKind> attention_pattern = {model::AttentionKind::kGlobal,
                                                         model::AttentionKind::kLocal};

  template <class V>
  void visit(V& v) {
    v("preset", preset, Choices{model::preset_names(), /*allow_empty=*/true},
      "architecture defaults; explicit keys below override it. Empty = the defaults as listed");
    v("path", path, "Hugging Face checkpoint folder; when set its config.json defines the architecture");
    v("dtype", dtype, "parameter dtype: float32 | bfloat16");
    v("vocab_size", vocab_size, AtLeast{1}, "token vocabulary size");
    v("max_position_embeddings", max_position_embeddings, AtLeast{1}, "longest sequence (learned positions)");
    v("hidden_size", hidden_size, AtLeast{1}, "model width; must be divisible by num_heads");
    v("num_layers", num_layers, AtLeast{1}, "transformer blocks");
    v("num_heads", num_heads, AtLeast{1}, "attention heads per layer");
    v("intermediate_size", intermediate_size, AtLeast{0}, "MLP width; 0 = 4 * hidden_size");
    v("window_size", window_size, AtLeast{1}, "tokens a local-attention layer sees (itself included)");
    v("layer_norm_epsilon", layer_norm_epsilon, Positive{}, "layer norm epsilon");
    v("initializer_range", initializer_range, Positive{}, "std of the normal init of fresh weights");
    v("bos_token_id", bos_token_id, AtLeast{0}, "beginning-of-sequence token");
    v("eos_token_id", eos_token_id, AtLeast{0}, "end-of-sequence token");
    v("attention_pattern", attention_pattern, NonEmpty{},
      "per-layer attention (global | local), repeated cyclically over num_layers");
  }
  // Rules spanning fields (hidden_size % num_heads, token ids < vocab_size); throws InputError.
  void check() const;
  bool operator==(const ModelSection&) const = default;
};

struct TokenizerSection {
  std::string path;

  template <class V>
  void visit(V& v) {
    v("path", path, "folder with vocab.json + merges.txt or tokenizer.json; empty = none");
  }
  bool operator==(const TokenizerSection&) const = default;
};

struct GenerateSection {
  int64_t max_new_tokens = 20;
  int num_beams = 1;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::kFalse;
  int64_t eos_token_id = -1;

  template <class V>
  void visit(V& v) {
    v("max_new_tokens", max_new_tokens, AtLeast{0}, "tokens to generate after the prompt");
    v("num_beams", num_beams, Range{1, 64}, "beams for beam search, 1 = greedy");
    v("length_penalty", length_penalty, "beam score = logprob sum / length^length_penalty");
    v("early_stopping", early_stopping, "beam search stop rule (HF semantics): true | false | never");
    v("eos_token_id", eos_token_id, AtLeast{-1}, "token that ends a sequence; -1 = the model's");
  }
  bool operator==(const GenerateSection&) const = default;
};

struct RuntimeSection {
  int threads = 0;
  uint64_t seed = 1234;
  LogLevel log_level = LogLevel::kInfo;
  Device device = Device::kCpu;

  template <class V>
  void visit(V& v) {
    v("threads", threads, AtLeast{0}, "CPU threads; 0 = all cores");
    v("seed", seed, "random seed for init, sampling and data order");
    v("log_level", log_level, "trace | debug | info | warn | error");
    v("device", device, "cpu | cuda");
  }
  bool operator==(const RuntimeSection&) const = default;
};

struct RunSection {
  std::string name = "demo";
  std::string output_dir = "results";

  template <class V>
  void visit(V& v) {
    v("name", name, NonEmpty{}, "run name; outputs go to <output_dir>/<name>");
    v("output_dir", output_dir, NonEmpty{}, "parent folder of all run outputs");
  }
  bool operator==(const RunSection&) const = default;
};

// Training data: rows of token ids, each row one fixed-length training sequence.
struct DataSection {
  std::string train_path;
  int64_t max_rows = 0;
  int64_t seq_len = 0;
  bool shuffle = true;

  template <class V>
  void visit(V& v) {
    v("train_path", train_path, ".npy token array [rows, T] (uint16/int32/int64, C or Fortran order)");
    v("max_rows", max_rows, AtLeast{0}, "use only the first max_rows rows; 0 = all");
    v("seq_len", seq_len, AtLeast{0}, "train on the first seq_len tokens of each row; 0 = the whole row");
    v("shuffle", shuffle, "a fresh seeded permutation every epoch (false = file order)");
  }
  bool operator==(const DataSection&) const = default;
};

// The optimisation: steps, batch geometry, AdamW, schedule, clipping. Gradient accumulation is derived:
// global_batch_size = micro_batch_size x accumulation x ranks.
struct TrainSection {
  int64_t steps = 100;
  int64_t global_batch_size = 8;
  int64_t micro_batch_size = 2;
  double lr = 1e-4;
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double max_grad_norm = 1.0;
  int64_t log_every = 1;
  bool save_final = true;

  template <class V>
  void visit(V& v) {
    v("steps", steps, AtLeast{1}, "optimizer steps to run (in total, across resumes)");
    v("global_batch_size", global_batch_size, AtLeast{1}, "sequences per optimizer step, over all ranks");
    v("micro_batch_size", micro_batch_size, AtLeast{1}, "sequences per forward/backward on one rank");
    v("lr", lr, Positive{}, "peak learning rate");
    v("schedule", schedule, "constant | linear | cosine (decay after warm-up to min_lr_ratio * lr)");
    v("warmup_steps", warmup_steps, AtLeast{0}, "linear warm-up from 0 over this many steps");
    v("min_lr_ratio", min_lr_ratio, Range{0.0, 1.0}, "decay floor as a fraction of lr");
    v("weight_decay", weight_decay, AtLeast{0.0}, "AdamW decoupled weight decay");
    v("beta1", beta1, Range{0.0, 0.999999}, "AdamW beta1");
    v("beta2", beta2, Range{0.0, 0.999999}, "AdamW beta2");
    v("eps", eps, Positive{}, "AdamW epsilon");
    v("max_grad_norm", max_grad_norm, AtLeast{0.0}, "global gradient-norm clipping; 0 = off");
    v("log_every", log_every, AtLeast{1}, "console progress line every N steps (rank 0)");
    v("save_final", save_final, "write the final model as an HF folder to <run>/final");
  }
  void check() const;  // micro_batch_size <= global_batch_size
  bool operator==(const TrainSection&) const = default;
};

struct ZeroSection {
  int stage = 1;
  int64_t bucket_numel = 16'000'000;

  template <class V>
  void visit(V& v) {
    v("stage", stage, Range{0, 2}, "0 = plain data parallel, 1 = shard optimizer state, 2 = also gradients");
    v("bucket_numel", bucket_numel, AtLeast{1}, "elements per reduce-scatter / all-gather bucket");
  }
  bool operator==(const ZeroSection&) const = default;
};

struct CheckpointSection {
  int64_t every = 0;
  int64_t keep_last = 2;
  std::string resume;

  template <class V>
  void visit(V& v) {
    v("every", every, AtLeast{0},
      "save every N optimizer steps (and always at the end); 0 = only at the end");
    v("keep_last", keep_last, AtLeast{1}, "complete checkpoints kept; older ones are deleted");
    v("resume", resume,
      "\"\" = start fresh, auto = newest complete checkpoint of the run (fresh if none), or a path");
  }
  bool operator==(const CheckpointSection&) const = default;
};

struct MetricsSection {
  double flush_seconds = 5.0;

  template <class V>
  void visit(V& v) {
    v("flush_seconds", flush_seconds, AtLeast{0.0},
      "write buffered metrics to metrics.h5 at least this often");
  }
  bool operator==(const MetricsSection&) const = default;
};

struct Config {
  ModelSection model;
  TokenizerSection tokenizer;
  GenerateSection generate;
  DataSection data;
  TrainSection train;
  ZeroSection zero;
  CheckpointSection checkpoint;
  MetricsSection metrics;
  RuntimeSection runtime;
  RunSection run;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "model architecture and weights");
    v.section("tokenizer", tokenizer, "tokenizer files");
    v.section("generate", generate, "text generation");
    v.section("data", data, "training data");
    v.section("train", train, "optimisation (lethe train)");
    v.section("zero", zero, "ZeRO sharding of optimizer state and gradients");
    v.section("checkpoint", checkpoint, "HDF5 checkpoints and resume");
    v.section("metrics", metrics, "metrics.h5");
    v.section("runtime", runtime, "process-wide settings");
    v.section("run", run, "run identity and outputs");
  }
  bool operator==(const Config&) const = default;
};

// Loads `file` (none = built-in defaults) and applies each `--set section.key=value` in order, values parsed
// as YAML scalars or flow sequences (`--set model.attention_pattern=[global,local]`). Validates everything;
// throws InputError naming the file or --set, the key path and how to fix it.
Config load_config(const std::optional<std::filesystem::path>& file, const std::vector<std::string>& sets);

// Field constraints and cross-field rules, for configs built in code; load_config already runs it.
void validate_config(const Config& cfg);

// YAML text with every resolved value and its doc as a comment; load_config reads it back to an equal Config.
std::string dump_config(const Config& cfg);

// Every valid dotted key path ("generate.num_beams"), in declaration order.
std::vector<std::string> config_keys();

// Overwrites the architecture fields with preset `name` (InputError if unknown); empty = leave them.
// load_config calls it before applying explicit keys.
void apply_preset(ModelSection& m, const std::string& name);

// The GptNeoConfig the section's fields describe (attention_pattern expanded over num_layers). When
// `path` is set the checkpoint's config.json supersedes this at load time.
model::GptNeoConfig architecture(const ModelSection& m);

}  // namespace lethe
