// lethe's typed configuration. Each section is a plain struct with defaults whose `visit` lists its fields
// once (see config_schema.h); loading YAML, dumping it, `--set` overrides and key listing are all driven by
// that list, so code reads `cfg.generate.options.num_beams`, never a string lookup.
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
#include "model/model_config.h"
#include "model/presets.h"
#include "unlearn/method.h"
#include "zero/adamw.h"
#include "zero/schedule.h"

namespace lethe {

enum class Dtype { kFloat32, kBFloat16, kFloat16 };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class Device { kAuto, kCpu, kCuda };
enum class Embedder { kTfidf, kLm, kBert };
enum class ElVariant { kIcu, kKu };
enum class StopLogic { kAuto, kAnd, kOr };
enum class Refine { kPairs, kNone };
enum class DecodeCleanup { kNone, kHf4 };
enum class RowTokens { kStored, kReencoded };
enum class EmptyBatch { kSkip, kStep };
using model::EarlyStopping;  // true | false | never, HF semantics (model/generate_options.h)

template <>
struct EnumNames<Dtype> {
  static constexpr std::pair<Dtype, std::string_view> values[] = {
      {Dtype::kFloat32, "float32"}, {Dtype::kBFloat16, "bfloat16"}, {Dtype::kFloat16, "float16"}};
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
  static constexpr std::pair<Device, std::string_view> values[] = {
      {Device::kAuto, "auto"}, {Device::kCpu, "cpu"}, {Device::kCuda, "cuda"}};
};
template <>
struct EnumNames<zero::Schedule> {
  static constexpr std::pair<zero::Schedule, std::string_view> values[] = {
      {zero::Schedule::kConstant, "constant"},
      {zero::Schedule::kLinear, "linear"},
      {zero::Schedule::kCosine, "cosine"}};
};
template <>
struct EnumNames<model::Family> {
  static constexpr std::pair<model::Family, std::string_view> values[] = {{model::Family::kGptNeo, "gpt_neo"},
                                                                          {model::Family::kLlama, "llama"}};
};
template <>
struct EnumNames<model::RopeType> {
  static constexpr std::pair<model::RopeType, std::string_view> values[] = {
      {model::RopeType::kNone, "none"},
      {model::RopeType::kLinear, "linear"},
      {model::RopeType::kLlama3, "llama3"}};
};
template <>
struct EnumNames<Embedder> {
  static constexpr std::pair<Embedder, std::string_view> values[] = {
      {Embedder::kTfidf, "tfidf"}, {Embedder::kLm, "lm"}, {Embedder::kBert, "bert"}};
};
template <>
struct EnumNames<ElVariant> {
  static constexpr std::pair<ElVariant, std::string_view> values[] = {{ElVariant::kIcu, "icu"},
                                                                      {ElVariant::kKu, "ku"}};
};
template <>
struct EnumNames<StopLogic> {
  static constexpr std::pair<StopLogic, std::string_view> values[] = {
      {StopLogic::kAuto, "auto"}, {StopLogic::kAnd, "and"}, {StopLogic::kOr, "or"}};
};
template <>
struct EnumNames<Refine> {
  static constexpr std::pair<Refine, std::string_view> values[] = {{Refine::kPairs, "pairs"},
                                                                   {Refine::kNone, "none"}};
};
template <>
struct EnumNames<RowTokens> {
  static constexpr std::pair<RowTokens, std::string_view> values[] = {{RowTokens::kStored, "stored"},
                                                                      {RowTokens::kReencoded, "reencoded"}};
};
template <>
struct EnumNames<DecodeCleanup> {
  static constexpr std::pair<DecodeCleanup, std::string_view> values[] = {{DecodeCleanup::kNone, "none"},
                                                                          {DecodeCleanup::kHf4, "hf4"}};
};
template <>
struct EnumNames<EmptyBatch> {
  static constexpr std::pair<EmptyBatch, std::string_view> values[] = {{EmptyBatch::kSkip, "skip"},
                                                                       {EmptyBatch::kStep, "step"}};
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

// GPT-Neo's architecture: model::GptNeoConfig itself (HF's GPTNeoConfig names), with the per-layer
// attention kinds given as a pattern repeated over the layers. Defaults: GPT-Neo 125M.
struct GptNeoSection {
  model::GptNeoConfig arch;
  // Repeated cyclically over the layers: [global, local] on 4 layers = global, local, global, local.
  std::vector<model::AttentionKind> attention_pattern = {model::AttentionKind::kGlobal,
                                                         model::AttentionKind::kLocal};

  template <class V>
  void visit(V& v) {
    v("vocab_size", arch.vocab_size, AtLeast<int64_t>{1}, "token vocabulary size");
    v("max_position_embeddings", arch.max_position_embeddings, AtLeast<int64_t>{1},
      "longest sequence (learned positions)");
    v("hidden_size", arch.hidden_size, AtLeast<int64_t>{1}, "model width; must be divisible by num_heads");
    v("num_layers", arch.num_layers, AtLeast<int64_t>{1}, "transformer blocks");
    v("num_heads", arch.num_heads, AtLeast<int64_t>{1}, "attention heads per layer");
    v("intermediate_size", arch.intermediate_size, AtLeast<int64_t>{0}, "MLP width; 0 = 4 * hidden_size");
    v("window_size", arch.window_size, AtLeast<int64_t>{1},
      "tokens a local-attention layer sees (itself included)");
    v("layer_norm_epsilon", arch.layer_norm_epsilon, Positive{}, "layer norm epsilon");
    v("initializer_range", arch.initializer_range, Positive{}, "std of the normal init of fresh weights");
    v("bos_token_id", arch.bos_token_id, AtLeast<int64_t>{0}, "beginning-of-sequence token");
    v("eos_token_id", arch.eos_token_id, AtLeast<int64_t>{0}, "end-of-sequence token");
    v("attention_pattern", attention_pattern, NonEmpty{},
      "per-layer attention (global | local), repeated cyclically over num_layers");
  }
  model::GptNeoConfig config() const;  // arch with attention_layers expanded from the pattern
  void check_arch() const;             // hidden_size % num_heads, token ids < vocab_size; InputError
  bool operator==(const GptNeoSection&) const = default;
};

// Llama's architecture: model::LlamaConfig itself (HF's LlamaConfig names; rope_scaling's fields as rope_*).
// Defaults: Llama-2 7B.
struct LlamaSection {
  model::LlamaConfig arch;

  template <class V>
  void visit(V& v) {
    v("vocab_size", arch.vocab_size, AtLeast<int64_t>{1}, "token vocabulary size");
    v("max_position_embeddings", arch.max_position_embeddings, AtLeast<int64_t>{1}, "trained context length");
    v("hidden_size", arch.hidden_size, AtLeast<int64_t>{1}, "model width");
    v("intermediate_size", arch.intermediate_size, AtLeast<int64_t>{1}, "SwiGLU MLP width");
    v("num_layers", arch.num_layers, AtLeast<int64_t>{1}, "decoder blocks (num_hidden_layers)");
    v("num_heads", arch.num_heads, AtLeast<int64_t>{1}, "query heads (num_attention_heads)");
    v("num_kv_heads", arch.num_kv_heads, AtLeast<int64_t>{1},
      "key/value heads (num_key_value_heads); fewer than num_heads = grouped-query attention");
    v("head_dim", arch.head_size, AtLeast<int64_t>{0}, "per-head width; 0 = hidden_size / num_heads");
    v("rms_norm_eps", arch.rms_norm_eps, Positive{}, "RMSNorm epsilon");
    v("rope_theta", arch.rope_theta, Positive{}, "rotary base frequency");
    v("rope_type", arch.rope_scaling.type, "rope_scaling: none | linear | llama3");
    v("rope_factor", arch.rope_scaling.factor, Positive{}, "rope_scaling.factor (linear, llama3)");
    v("rope_low_freq_factor", arch.rope_scaling.low_freq_factor, Positive{},
      "rope_scaling.low_freq_factor (llama3)");
    v("rope_high_freq_factor", arch.rope_scaling.high_freq_factor, Positive{},
      "rope_scaling.high_freq_factor (llama3)");
    v("rope_original_max_position_embeddings", arch.rope_scaling.original_max_position_embeddings,
      AtLeast<int64_t>{1}, "rope_scaling.original_max_position_embeddings (llama3)");
    v("initializer_range", arch.initializer_range, Positive{}, "std of the normal init of fresh weights");
    v("tie_word_embeddings", arch.tie_word_embeddings, "the head reuses the token embedding");
    v("attention_bias", arch.attention_bias, "biases on the q, k, v and o projections");
    v("mlp_bias", arch.mlp_bias, "biases on the gate, up and down projections");
    v("bos_token_id", arch.bos_token_id, AtLeast<int64_t>{0}, "beginning-of-sequence token");
    v("eos_token_ids", arch.eos_token_ids, "end-of-sequence tokens (any ends generation; the first pads)");
    v("pad_token_id", arch.pad_token_id, AtLeast<int64_t>{-1}, "embedding row without gradient; -1 = none");
  }
  void check_arch() const;  // GQA divisibility, head width, token ids < vocab_size; InputError
  bool operator==(const LlamaSection&) const = default;
};

struct ModelSection {
  std::string preset = "gpt-neo-125m";
  std::string path;
  Dtype dtype = Dtype::kFloat32;
  model::Family family = model::Family::kGptNeo;
  GptNeoSection gpt_neo;
  LlamaSection llama;

  template <class V>
  void visit(V& v) {
    v("preset", preset, Choices{model::preset_names(), /*allow_empty=*/true},
      "architecture defaults (sets family and that family's keys); explicit keys override it. Empty = the "
      "defaults as listed");
    v("path", path, "Hugging Face checkpoint folder; when set its config.json defines the architecture");
    v("dtype", dtype,
      "parameter dtype: float32 | bfloat16 | float16 (trains with dynamic loss scaling: GPUs without bf16)");
    v("family", family, "gpt_neo | llama: which of the sections below describes a fresh model");
    v.section("gpt_neo", gpt_neo, "GPT-Neo architecture (family gpt_neo)");
    v.section("llama", llama, "Llama architecture (family llama)");
  }
  // The active family's cross-field rules; throws InputError.
  void check() const;
  bool operator==(const ModelSection&) const = default;
};

struct TokenizerSection {
  std::string path;
  DecodeCleanup decode_cleanup = DecodeCleanup::kNone;

  template <class V>
  void visit(V& v) {
    v("path", path, "folder with vocab.json + merges.txt or tokenizer.json; empty = none");
    v("decode_cleanup", decode_cleanup,
      "none (decoded text as the tokens spell it) | hf4 (transformers 4.x GPT-2 decode: "
      "clean_up_tokenization, "
      "\" .\" -> \".\", \" 's\" -> \"'s\", ...): applied to the embedder's text in prep and to the "
      "BLEU/BERTScore texts, as ICU's code ran");
  }
  bool operator==(const TokenizerSection&) const = default;
};

// model::GenerateOptions itself (HF generate() semantics); eos_token_ids empty = the model's.
struct GenerateSection {
  model::GenerateOptions options;

  template <class V>
  void visit(V& v) {
    v("max_new_tokens", options.max_new_tokens, AtLeast<int64_t>{0}, "tokens to generate after the prompt");
    v("num_beams", options.num_beams, Range<int64_t>{1, 64}, "beams for beam search, 1 = greedy");
    v("length_penalty", options.length_penalty, "beam score = logprob sum / length^length_penalty");
    v("early_stopping", options.early_stopping, "beam search stop rule (HF semantics): true | false | never");
    v("eos_token_ids", options.eos_token_ids, "tokens that end a sequence; [] = the model's");
  }
  bool operator==(const GenerateSection&) const = default;
};

struct RuntimeSection {
  int threads = 0;
  uint64_t seed = 1234;
  LogLevel log_level = LogLevel::kInfo;
  Device device = Device::kAuto;

  template <class V>
  void visit(V& v) {
    v("threads", threads, AtLeast{0}, "CPU threads; 0 = all cores");
    v("seed", seed, "random seed for init, sampling and data order");
    v("log_level", log_level, "trace | debug | info | warn | error");
    v("device", device, "auto (cuda when a GPU is visible) | cpu | cuda: one GPU per rank");
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

// The optimiser of lethe train and lethe unlearn: AdamW (zero::AdamWOptions itself), gradient clipping and
// the learning-rate schedule. Defaults are torch's AdamW without weight decay and HF Trainer's clipping;
// configs/icu, ku, llmu and po set ICU's (lr 5e-6, beta2 0.98, no clipping).
struct OptimizerSection {
  zero::AdamWOptions adamw{.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
  double max_grad_norm = 1.0;
  zero::Schedule schedule = zero::Schedule::kConstant;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;

  template <class V>
  void visit(V& v) {
    v("lr", adamw.lr, Positive{}, "peak learning rate");
    v("beta1", adamw.beta1, Range{0.0, 0.999999}, "AdamW beta1");
    v("beta2", adamw.beta2, Range{0.0, 0.999999}, "AdamW beta2 (ICU: 0.98)");
    v("eps", adamw.eps, Positive{}, "AdamW epsilon");
    v("weight_decay", adamw.weight_decay, AtLeast{0.0}, "AdamW decoupled weight decay");
    v("max_grad_norm", max_grad_norm, AtLeast{0.0}, "global gradient-norm clipping; 0 = off (ICU)");
    v("schedule", schedule,
      "constant | linear | cosine (decay after warm-up to min_lr_ratio * lr; lethe train only so far)");
    v("warmup_steps", warmup_steps, AtLeast<int64_t>{0},
      "linear warm-up from 0 over this many steps (lethe train)");
    v("min_lr_ratio", min_lr_ratio, Range{0.0, 1.0}, "decay floor as a fraction of lr");
  }
  // The schedule over a run of total_steps optimizer steps.
  zero::ScheduleOptions schedule_options(int64_t total_steps) const {
    return {schedule, adamw.lr, warmup_steps, total_steps, min_lr_ratio};
  }
  bool operator==(const OptimizerSection&) const = default;
};

// lethe train's run: steps and batch geometry (the optimiser is the optimizer section). Gradient
// accumulation is derived: global_batch_size = micro_batch_size x accumulation x ranks.
struct TrainSection {
  int64_t steps = 100;
  int64_t global_batch_size = 8;
  int64_t micro_batch_size = 2;
  int64_t log_every = 1;
  bool save_final = true;
  bool activation_checkpointing = false;

  template <class V>
  void visit(V& v) {
    v("steps", steps, AtLeast{1}, "optimizer steps to run (in total, across resumes)");
    v("global_batch_size", global_batch_size, AtLeast{1}, "sequences per optimizer step, over all ranks");
    v("micro_batch_size", micro_batch_size, AtLeast{1}, "sequences per forward/backward on one rank");
    v("log_every", log_every, AtLeast{1}, "console progress line every N steps (rank 0)");
    v("save_final", save_final, "write the final model as an HF folder to <run>/final");
    v("activation_checkpointing", activation_checkpointing,
      "recompute each block's activations during backward instead of keeping them (lethe train and lethe "
      "unlearn): far less activation memory on long sequences for about a third more compute");
  }
  void check() const;  // micro_batch_size <= global_batch_size
  bool operator==(const TrainSection&) const = default;
};

struct ZeroSection {
  int stage = 1;
  int64_t bucket_numel = 16'000'000;
  bool fp32_accumulation = true;
  bool reduce_bf16 = false;
  double initial_loss_scale = 65536.0;
  int64_t loss_scale_window = 2000;

  template <class V>
  void visit(V& v) {
    v("stage", stage, Range{0, 2}, "0 = plain data parallel, 1 = shard optimizer state, 2 = also gradients");
    v("bucket_numel", bucket_numel, AtLeast{1}, "elements per reduce-scatter / all-gather bucket");
    v("fp32_accumulation", fp32_accumulation,
      "stages 0/1 with 16-bit parameters: accumulate micro-step gradients in fp32 (false: in the parameter "
      "dtype, half the memory, rounded every micro-step); stage 2 always reduces in fp32");
    v("reduce_bf16", reduce_bf16,
      "reduce gradients as bf16: half the bytes over NCCL (which sums them in bf16); MPI sums them in fp32");
    v("initial_loss_scale", initial_loss_scale, AtLeast{1.0},
      "model.dtype=float16: the starting dynamic loss scale (halved on overflow)");
    v("loss_scale_window", loss_scale_window, AtLeast{1},
      "model.dtype=float16: finite steps in a row before the loss scale doubles");
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
  bool sync_timings = false;

  template <class V>
  void visit(V& v) {
    v("flush_seconds", flush_seconds, AtLeast{0.0},
      "write buffered metrics to metrics.h5 at least this often");
    v("sync_timings", sync_timings,
      "GPU: wait for the device at every phase boundary so forward/backward/optimizer seconds are the "
      "device's (costs the overlap of host and device); off: those are host times, the step time is exact");
  }
  bool operator==(const MetricsSection&) const = default;
};

// `lethe prep`: forget-target selection and nearest-neighbour ("analogous") pairs (spec icu.md §2.3).
struct PrepSection {
  std::string source = "../shared/data/lm_extraction/train_dataset.npy";
  std::string forget_csv;
  std::vector<int64_t> forget_ids;
  int64_t forget_random = 0;
  Embedder embedder = Embedder::kTfidf;
  std::string embedder_path;
  int64_t embed_begin = 100;
  int64_t ngram = 2;
  int64_t max_tokens = 0;
  std::string embeddings_cache;
  RowTokens rows = RowTokens::kStored;
  int64_t k = 10;
  int64_t batch_size = 16;
  std::string name = "demo";
  std::string output_dir = "datasets";

  template <class V>
  void visit(V& v) {
    v("source", source, NonEmpty{}, ".npy token array [rows, T]: the pool targets and neighbours come from");
    v("forget_csv", forget_csv, "CSV with a doc_id column (KU/ICU target sets): row indices into source");
    v("forget_ids", forget_ids, "explicit target row indices (used when forget_csv is empty)");
    v("forget_random", forget_random, AtLeast{0},
      "draw this many targets at random (runtime.seed) when no csv or ids are given");
    v("embedder", embedder,
      "tfidf (token n-grams, needs no model) | lm (mean-pooled last hidden state of embedder_path) | bert "
      "(sentence embedder on the decoded text, all-MiniLM-L6-v2 style)");
    v("embedder_path", embedder_path,
      "lm: HF GPT-Neo folder (empty = model.path); bert: a sentence-transformers folder (all-MiniLM-L6-v2: "
      "modules.json, 1_Pooling, tokenizer.json) or a plain HF BERT folder (mean pooling, L2-normalised)");
    v("embed_begin", embed_begin, AtLeast{0},
      "embed tokens embed_begin..T-1 of each row (ICU: 100, the last 100)");
    v("ngram", ngram, Range{1, 4}, "tfidf: token 1..ngram-grams");
    v("max_tokens", max_tokens, AtLeast{0},
      "bert: word pieces per text, [CLS]/[SEP] included; 0 = the folder's max_seq_length (all-MiniLM-L6-v2: "
      "256), else its max_position_embeddings");
    v("embeddings_cache", embeddings_cache,
      "HDF5 file of every row's embedding: reused when it was made from the same source, embedder, "
      "embed_begin and decode_cleanup, else (re)written; empty = no cache");
    v("rows", rows,
      "stored (train and validate on the benchmark's tokens) | reencoded (ICU's Datasets_mean.py: each row "
      "decoded with tokenizer.decode_cleanup, re-encoded, left-padded with EOS or truncated to its length, "
      "with an attention mask; validation prompts re-encoded likewise)");
    v("k", k, AtLeast{1}, "neighbours kept per target (ICU trains on the first)");
    v("batch_size", batch_size, AtLeast{1}, "rows (lm) or texts (bert) per embedding forward");
    v("name", name, NonEmpty{}, "dataset name: written to <output_dir>/<name>/pairs.h5");
    v("output_dir", output_dir, NonEmpty{}, "parent folder of prepared datasets");
  }
  bool operator==(const PrepSection&) const = default;
};

// `lethe unlearn` / `lethe eval`: the method, its weights, ICU's refinement and stop rule (spec icu.md
// §3-§6; the optimiser is the optimizer section). Defaults are the reference's 125M script.
struct UnlearnSection {
  std::string dataset = "datasets/demo";
  unlearn::Method method = unlearn::Method::kIcu;
  double uw = 1.0, lw = 0.5, kl = 1.0;
  double f1 = 0.3, bleu = 0.01, acc = 0.5994, el = 0.0499;
  StopLogic stop_logic = StopLogic::kAuto;
  Refine refine = Refine::kPairs;
  std::string bert_path;
  int64_t bert_layer = 9;
  ElVariant el_variant = ElVariant::kIcu;
  int64_t el_n = 10;
  int64_t ma_begin = 1;
  int64_t prefix_begin = 100, suffix_begin = 150, new_tokens = 50;
  int num_beams = 2;
  int64_t batch_size = 8;
  int64_t micro_batch_size = 0;
  int64_t max_epochs = 100;
  EmptyBatch empty_batch = EmptyBatch::kSkip;
  int64_t val_batch_size = 8;
  bool save_final = true;

  template <class V>
  void visit(V& v) {
    v("dataset", dataset, NonEmpty{}, "folder written by lethe prep (holds pairs.h5)");
    v("method", method, "icu | ga (KU gradient ascent, KUMPR) | llmu | po");
    v("uw", uw, AtLeast{0.0}, "weight of the forget term (gradient ascent)");
    v("lw", lw, AtLeast{0.0}, "weight of the neighbour LM term");
    v("kl", kl, AtLeast{0.0}, "weight of the KL-to-original term on neighbours");
    v("f1", f1, Range{0.0, 1.0}, "a pair is forgotten when its BERTScore F1 < f1 ...");
    v("bleu", bleu, Range{0.0, 1.0}, "... or its sentence BLEU < bleu");
    v("acc", acc, Range{0.0, 1.0}, "stop when forget-set MA < acc ...");
    v("el", el, Range{0.0, 1.0}, "... and (stop_logic) EL_n < el");
    v("stop_logic", stop_logic,
      "auto (the method's reference: or for po, and for icu, ga, llmu) | and | or (ICU's DeepSpeed LLMU)");
    v("refine", refine,
      "pairs (ICU: after every validation each pair is re-judged, forgotten pairs stop training) | none "
      "(every pair trains every epoch: Knowledge Unlearning)");
    v("bert_path", bert_path, "HF BERT folder for BERTScore; empty = BLEU-only refinement");
    v("bert_layer", bert_layer, AtLeast{1},
      "BERT layer whose output BERTScore compares (9 = bert-base-uncased)");
    v("el_variant", el_variant, "icu (starts in the suffix region, /41) | ku (starts 1.., /190)");
    v("el_n", el_n, AtLeast{1}, "n of EL_n");
    v("ma_begin", ma_begin, AtLeast{1},
      "MA scores positions ma_begin..T-1 (ICU and KU: 1, the whole row; suffix_begin = the suffix region "
      "only)");
    v("prefix_begin", prefix_begin, AtLeast{0}, "first column of the generation prompt (ICU: 100)");
    v("suffix_begin", suffix_begin, AtLeast{1}, "first column of the suffix to reproduce (ICU: 150)");
    v("new_tokens", new_tokens, AtLeast{1}, "tokens generated from the prompt for BLEU/BERTScore (ICU: 50)");
    v("num_beams", num_beams, Range{1, 64}, "beams for that generation (ICU: 2)");
    v("batch_size", batch_size, AtLeast{0},
      "pairs per optimizer step over all ranks (ICU: 8); 0 = the whole forget set, one step per epoch (KU)");
    v("micro_batch_size", micro_batch_size, AtLeast{0},
      "pairs per forward on one rank; 0 = the rank's whole share");
    v("max_epochs", max_epochs, AtLeast{1},
      "guard the reference lacks: stop after this many training epochs");
    v("empty_batch", empty_batch,
      "skip = no optimizer step when every pair of a batch is forgotten | step = Adam steps on zero "
      "gradients, as the reference does");
    v("val_batch_size", val_batch_size, AtLeast{1}, "rows per forward / generation batch in validation");
    v("save_final", save_final, "write the unlearned model as an HF folder to <run>/final");
  }
  bool operator==(const UnlearnSection&) const = default;
};

// Downstream utility evaluation (spec icu.md §9): `lethe eval --utility`, and `lethe unlearn` before, during
// and after unlearning. The tasks, files and templates live in the suite file (configs/utility/*.yaml).
struct UtilitySection {
  std::string suite = "configs/utility/icu.yaml";
  std::vector<std::string> tasks;
  int64_t limit = 0;
  int64_t every = 0;
  bool at_start = false;
  bool at_end = false;
  bool keep_going = false;

  template <class V>
  void visit(V& v) {
    v("suite", suite, NonEmpty{}, "utility suite file: tasks, data files, prompt templates, window");
    v("tasks", tasks, "the suite's tasks to run, in suite order; empty = all");
    v("limit", limit, AtLeast{0}, "first N examples of every task (0 = all): quick checks");
    v("every", every, AtLeast{0},
      "lethe unlearn: run the suite after every K-th epoch's validation (0 = never)");
    v("at_start", at_start, "lethe unlearn: run the suite on the starting model (the 'before' column)");
    v("at_end", at_end, "lethe unlearn: run the suite on the final model (the 'after' column)");
    v("keep_going", keep_going,
      "a task that cannot be read is reported and skipped instead of ending the run");
  }
  bool operator==(const UtilitySection&) const = default;
};

struct Config {
  ModelSection model;
  TokenizerSection tokenizer;
  GenerateSection generate;
  DataSection data;
  TrainSection train;
  OptimizerSection optimizer;
  ZeroSection zero;
  CheckpointSection checkpoint;
  MetricsSection metrics;
  PrepSection prep;
  UnlearnSection unlearn;
  UtilitySection utility;
  RuntimeSection runtime;
  RunSection run;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "model architecture and weights");
    v.section("tokenizer", tokenizer, "tokenizer files");
    v.section("generate", generate, "text generation");
    v.section("data", data, "training data");
    v.section("train", train, "steps and batch geometry (lethe train)");
    v.section("optimizer", optimizer,
              "AdamW, clipping and learning-rate schedule (lethe train, lethe unlearn)");
    v.section("zero", zero, "ZeRO sharding of optimizer state and gradients");
    v.section("checkpoint", checkpoint, "HDF5 checkpoints and resume");
    v.section("metrics", metrics, "metrics.h5");
    v.section("prep", prep, "data preparation (lethe prep)");
    v.section("unlearn", unlearn, "unlearning method, refinement and stop rule (lethe unlearn, lethe eval)");
    v.section("utility", utility, "downstream utility suite (lethe eval --utility, lethe unlearn)");
    v.section("runtime", runtime, "process-wide settings");
    v.section("run", run, "run identity and outputs");
  }
  bool operator==(const Config&) const = default;
};

// Loads `file` (none = built-in defaults) and applies each `--set section.key=value` in order, values parsed
// as YAML scalars or flow sequences (`--set model.gpt_neo.attention_pattern=[global,local]`). Validates
// everything; throws InputError naming the file or --set, the key path and how to fix it.
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

// The architecture of the section's family (GPT-Neo: attention_pattern expanded over num_layers). When
// `path` is set the checkpoint's config.json supersedes this at load time.
model::ModelConfig architecture(const ModelSection& m);

}  // namespace lethe
