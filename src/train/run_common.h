// Pieces every run of the training loop shares (lethe train, lethe unlearn): timing, model construction,
// agreeing on the resume checkpoint.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "comm/communicator.h"
#include "config/config.h"
#include "core/progress.h"
#include "model/causal_lm.h"
#include "model/hf_checkpoint.h"
#include "zero/engine.h"

namespace lethe::train {

using Clock = std::chrono::steady_clock;

// Seconds since t.
double since(Clock::time_point t);
using lethe::hms;  // core/progress.h

// model.dtype as a torch dtype.
torch::ScalarType torch_dtype(Dtype d);

// model.path loaded in model.dtype on `device`, or (no path) a fresh model initialised with runtime.seed —
// identical on every rank. train.activation_checkpointing applies to it.
model::CausalLm make_model(const Config& cfg, torch::Device device);

// How final/ is written (the code `lethe export` runs too): fp32 weights, one file, and the run's tokenizer
// files (tokenizer.path, else model.path).
model::SaveOptions final_model_options(const Config& cfg);

// The engine options of a run: zero.*, the given AdamW settings and clipping, loss scaling for float16.
zero::EngineOptions engine_options(const Config& cfg, const zero::AdamWOptions& adam, double max_grad_norm);

// Every rank must resume from the same folder: rank 0 resolves it and broadcasts the path; a rank that does
// not see it (no shared file system) stops the job with that message.
std::optional<std::filesystem::path> agree_on_checkpoint(comm::Communicator& comm,
                                                         std::optional<std::filesystem::path> dir);

// Rank 0 creates the run folder and writes config.resolved.yaml (atomically); every rank gets the YAML text
// (it is stored in checkpoints).
std::string save_resolved_config(const Config& cfg, const std::filesystem::path& run_dir, bool lead);

// The checkpoint a run resumes from per checkpoint.resume ("" none, auto newest under root, or a path),
// agreed across ranks.
std::optional<std::filesystem::path> resume_target(const Config& cfg, comm::Communicator& comm,
                                                   const std::filesystem::path& ckpt_root);

}  // namespace lethe::train
