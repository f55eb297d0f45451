// lethe_device_check: the GPU checks that CI cannot run (it has no GPU), in one executable that a bare GPU
// node builds and runs in minutes (bench/device_check.sh). Each step compares the CUDA path with the CPU path
// that the unit tests already hold to Hugging Face, or measures something only a GPU shows (kernel choice,
// device memory, tokens/s). A step records its numbers in a Result; the runner (device_check.cpp) prints one
// line per step and writes them all as JSON.
//
// Files: device_check.cpp (runner, JSON, shared helpers), device_check_model.cpp (single-process steps),
// device_check_nccl.cpp (the two-process NCCL steps: starts and watches the ranks), device_check_rank.cpp
// (one such rank).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "comm/communicator.h"
#include "model/causal_lm.h"

namespace lethe::device_check {

// What one step found. numbers and notes become fields of the step's JSON object.
struct Result {
  std::string name;
  bool ok = true;
  double seconds = 0;
  std::vector<std::pair<std::string, double>> numbers;
  std::vector<std::pair<std::string, std::string>> notes;
  std::vector<std::string> errors;

  void number(const std::string& key, double v) { numbers.emplace_back(key, v); }
  void note(const std::string& key, const std::string& v) { notes.emplace_back(key, v); }
  void fail(const std::string& why) {
    ok = false;
    errors.push_back(why);
  }
  // Records `value` under `key`; the step fails when it exceeds `limit` or is not finite.
  void at_most(const std::string& key, double value, double limit);
};

struct Step {
  std::string name;
  std::string what;  // one line for --dry-run
  std::function<void(Result&)> run;
};

// This executable's path: the NCCL steps start it again as their child ranks.
struct Context {
  std::string self;
};

std::vector<Step> model_steps();                   // device_check_model.cpp
std::vector<Step> nccl_steps(const Context& ctx);  // device_check_nccl.cpp
std::vector<Step> precision_steps();               // device_check_precision.cpp

// A child rank (`--rank R --world W --store DIR --mode collectives|death`); returns its exit code.
int run_rank(int rank, int world, const std::string& store, const std::string& mode);
constexpr int kDeathTimeout = 20;  // rank_death: the ranks' LETHE_NCCL_TIMEOUT (seconds)
constexpr int kDeadRankCode = 3;   // rank_death: rank 1's planned exit code
constexpr int kSurvivedCode = 4;   // rank_death: rank 0 came back from a collective with a dead peer

// A child rank's Result travels to the parent as lines "number|note|error TAB key TAB value".
void save_lines(const Result& r, const std::string& path);
// Adds the saved numbers and notes to `into` with keys prefixed by `prefix`; saved errors fail `into`.
void load_lines(Result& into, const std::string& path, const std::string& prefix);

// --- shared helpers (device_check.cpp) ---------------------------------------------------------------------

// The tiny GPT-Neo of the parity and ZeRO checks: vocab 512, hidden 64, 4 layers alternating global/local,
// window 8, 4 heads, 64 positions. initializer_range 0.1 (HF: 0.02) so attention is peaked enough for a
// wrong mask to show and greedy decoding has no near-ties.
model::GptNeoConfig tiny_config();
// A released GPT-Neo shape: vocab 50257, 2048 positions, window 256, alternating attention.
model::GptNeoConfig released_config(int64_t layers, int64_t hidden, int64_t heads);

// dst's parameters = src's (same architecture; device and dtype may differ), matched by name.
void copy_parameters(model::CausalLm& dst, const model::CausalLm& src);
// max |a − b| in fp64 on the CPU; +inf on a shape mismatch.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

// The ZeRO run that zero_cuda_vs_cpu and nccl_collectives compare: the tiny model from seed 5, 5 AdamW steps
// on [4, 24] global batches of random ids drawn on the CPU from fixed seeds (the same in every process). This
// rank trains on rows [begin, begin + rows) of each batch with the summed next-token CE divided by the
// global label count (4 · 23), so any split over ranks gives the same update.
struct ZeroRun {
  torch::Tensor initial, final;  // flat parameters [Ψ] fp32 on the CPU, before and after
  comm::CommStats last_step;     // the communicator's traffic during the last optimizer step
  int64_t predicted_reduce = 0, predicted_gather = 0;
  int64_t skipped = 0;  // steps loss scaling skipped
};
// The precision paths the same run can take (device_check_precision.cpp); the defaults are the plain run.
struct TinyOptions {
  torch::ScalarType dtype = torch::kFloat;
  int64_t micro_steps = 1;  // backward passes per optimizer step (the rows split evenly)
  bool fp32_accumulation = true, reduce_bf16 = false, activation_checkpointing = false;
  double loss_scale = 0;  // > 0: dynamic loss scaling from this scale (growth after 2 finite steps)
};
ZeroRun train_tiny(comm::Communicator& comm, torch::Device device, int stage, int64_t begin, int64_t rows,
                   const TinyOptions& options = {});
constexpr int64_t kZeroBatch = 4;
// Records got's final parameters against want's (≤ 1e-5, keys prefix + "max_abs_diff"), that both started
// from the same weights, and that training moved them at all (else the comparison proves nothing).
void compare_zero(Result& r, const std::string& prefix, const ZeroRun& got, const ZeroRun& want);

}  // namespace lethe::device_check
