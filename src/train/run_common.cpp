#include "train/run_common.h"

#include <cstring>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/io.h"
#include "io/checkpoint.h"
#include "model/hf_checkpoint.h"

namespace lethe::train {
namespace fs = std::filesystem;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::optional<fs::path> agree_on_checkpoint(comm::Communicator& comm, std::optional<fs::path> dir) {
  std::string path = comm.rank() == 0 && dir ? dir->string() : "";
  torch::Tensor n = torch::full({1}, static_cast<int64_t>(path.size()), torch::kLong);
  comm.broadcast(n, 0);
  torch::Tensor bytes = torch::zeros({n.item<int64_t>()}, torch::kByte);
  if (comm.rank() == 0) std::memcpy(bytes.data_ptr(), path.data(), path.size());
  if (bytes.numel() > 0) comm.broadcast(bytes, 0);
  path.assign(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
  if (path.empty()) return std::nullopt;
  LETHE_CHECK_INPUT(
      fs::exists(fs::path(path) / "COMPLETE"),
      "rank {} does not see checkpoint {} that rank 0 resumes from: every rank needs the same (shared) "
      "file system",
      comm.rank(), path);
  return fs::path(path);
}

torch::ScalarType torch_dtype(Dtype d) {
  return d == Dtype::kBFloat16 ? torch::kBFloat16 : d == Dtype::kFloat16 ? torch::kHalf : torch::kFloat;
}

model::CausalLm make_model(const Config& cfg, torch::Device device) {
  const auto dtype = torch_dtype(cfg.model.dtype);
  model::CausalLm m{nullptr};
  if (!cfg.model.path.empty()) {
    m = model::load_hf_model(cfg.model.path, dtype, device);
  } else {
    m = model::make_causal_lm(architecture(cfg.model), device, dtype);
    m->reset_parameters(cfg.runtime.seed);  // the same seed on every rank: identical starting weights
  }
  m->set_activation_checkpointing(cfg.train.activation_checkpointing);
  return m;
}

model::SaveOptions final_model_options(const Config& cfg) {
  return {.tokenizer_from = cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path};
}

zero::EngineOptions engine_options(const Config& cfg, const zero::AdamWOptions& adam, double max_grad_norm) {
  zero::EngineOptions eo;
  eo.stage = cfg.zero.stage;
  eo.bucket_numel = cfg.zero.bucket_numel;
  eo.adam = adam;
  eo.max_grad_norm = max_grad_norm;
  eo.fp32_accumulation = cfg.zero.fp32_accumulation;
  eo.reduce_bf16 = cfg.zero.reduce_bf16;
  eo.loss_scaling.enabled = cfg.model.dtype == Dtype::kFloat16;
  eo.loss_scaling.initial_scale = cfg.zero.initial_loss_scale;
  eo.loss_scaling.growth_interval = cfg.zero.loss_scale_window;
  return eo;
}

std::string save_resolved_config(const Config& cfg, const fs::path& run_dir, bool lead) {
  std::string resolved = dump_config(cfg);
  if (lead) {
    fs::create_directories(run_dir);
    write_file_atomic(run_dir / "config.resolved.yaml",
                      {std::as_bytes(std::span(resolved.data(), resolved.size()))});
  }
  return resolved;
}

std::optional<fs::path> resume_target(const Config& cfg, comm::Communicator& comm,
                                      const fs::path& ckpt_root) {
  std::optional<fs::path> from;
  if (cfg.checkpoint.resume == "auto") {
    from = io::find_latest_checkpoint(ckpt_root);
    if (!from && comm.rank() == 0)
      spdlog::info("resume auto: no complete checkpoint under {}, starting fresh", ckpt_root.string());
  } else if (!cfg.checkpoint.resume.empty()) {
    from = fs::path(cfg.checkpoint.resume);
    LETHE_CHECK_INPUT(fs::is_directory(*from), "checkpoint.resume: {} is not a checkpoint folder",
                      from->string());
  }
  return agree_on_checkpoint(comm, from);
}

}  // namespace lethe::train
