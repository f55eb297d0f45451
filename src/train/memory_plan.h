// `lethe plan`: what one rank needs in memory to train a model with the ZeRO engine, term by term, each
// with the formula it comes from (README "Memory plan" repeats them). Notation: Ψ parameters, P = Ψ padded
// to a multiple of 16·N, N ranks, S = P/N the owned slice (S = P at stage 0), b bytes per parameter element
// (4 fp32, 2 bf16/fp16), B micro-batch, T sequence, C hidden, L layers, V vocabulary, H heads.
//
// On the CPU the plan is this process's resident memory (runtime = what libtorch costs before any model).
// On a GPU (cuda) it is the device memory of one rank: the CUDA context and, with several ranks, NCCL's
// buffers take the runtime's place. The GPU terms not measured on a GPU yet say so in their formula.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace lethe::train {

struct PlanInput {
  model::ModelConfig arch;
  int ranks = 1;
  int stage = 1;
  int param_bytes = 4;  // 4 = float32, 2 = bfloat16 or float16
  int64_t micro_batch = 2, seq = 128;
  int64_t bucket_numel = 16'000'000;
  bool reference_model = false;   // a frozen copy of the starting model (KL-to-original objectives)
  int64_t runtime_bytes = 0;      // resident memory before any model exists (libtorch and its libraries)
  bool cuda = false;              // plan the GPU's memory instead of the host's
  bool fp32_accumulation = true;  // zero.fp32_accumulation
  bool reduce_bf16 = false;       // zero.reduce_bf16
  bool activation_checkpointing = false;
};

// When a term is resident: while the model is built and flattened, while training, or both.
enum class Phase { kTrain, kBuild, kBoth };

struct PlanTerm {
  std::string name, formula;
  int64_t bytes = 0;
  Phase phase = Phase::kTrain;
};

struct Plan {
  std::vector<PlanTerm> terms;
  int64_t build_peak = 0;  // the kBuild and kBoth terms
  int64_t train_peak = 0;  // the kTrain and kBoth terms
  int64_t total() const { return build_peak > train_peak ? build_peak : train_peak; }
};

Plan memory_plan(const PlanInput& in);

}  // namespace lethe::train
