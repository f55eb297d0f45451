#include "train/trainer.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/nn/functional/loss.h>

#include "comm/device.h"
#include "core/error.h"
#include "core/io.h"
#include "core/memory.h"
#include "core/signals.h"
#include "data/npy.h"
#include "data/sampler.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "io/run_log.h"
#include "model/causal_lm.h"
#include "model/hf_checkpoint.h"
#include "model/lm_loss.h"
#include "model/presets.h"
#include "train/run_common.h"
#include "zero/engine.h"
#include "zero/schedule.h"

namespace lethe::train {
namespace fs = std::filesystem;

namespace {

// Token rows [R, T] int64 from data.train_path, validated against the model's vocabulary.
torch::Tensor load_rows(const DataSection& d, int64_t vocab) {
  LETHE_CHECK_INPUT(!d.train_path.empty(),
                    "data.train_path is empty; set it to a .npy token array, e.g. "
                    "--set data.train_path=../shared/data/lm_extraction/train_dataset.npy");
  data::TokenArray a = data::read_npy(d.train_path);
  LETHE_CHECK_INPUT(a.rows > 0 && a.cols > 0, "{}: the token array is empty ({} x {})", d.train_path, a.rows,
                    a.cols);
  const int64_t rows = d.max_rows > 0 ? std::min(d.max_rows, a.rows) : a.rows;
  const int64_t cols = d.seq_len > 0 ? d.seq_len : a.cols;
  LETHE_CHECK_INPUT(cols >= 2 && cols <= a.cols,
                    "data.seq_len = {}: {} has rows of {} tokens; expected 2..{}", d.seq_len, d.train_path,
                    a.cols, a.cols);
  torch::Tensor t = torch::from_blob(a.values.data(), {a.rows, a.cols}, torch::kLong)
                        .narrow(0, 0, rows)
                        .narrow(1, 0, cols)
                        .clone();
  const int64_t max_id = t.max().item<int64_t>(), min_id = t.min().item<int64_t>();
  LETHE_CHECK_INPUT(min_id >= 0 && max_id < vocab,
                    "{}: token ids span [{}, {}] but the model's vocabulary is {}", d.train_path, min_id,
                    max_id, vocab);
  return t;
}

const std::vector<std::string> kSeries = {"loss",
                                          "lr",
                                          "grad_norm",
                                          "grad_norm_clipped",
                                          "tokens_per_s",
                                          "step_seconds",
                                          "forward_seconds",
                                          "backward_seconds",
                                          "comm_seconds",
                                          "optimizer_seconds",
                                          "reduce_scatter_bytes",
                                          "all_gather_bytes",
                                          "all_reduce_bytes",
                                          "optimizer_bytes",
                                          "grad_bytes_peak",
                                          "rss_bytes",
                                          "peak_rss_bytes",
                                          "loss_scale",
                                          "gpu_allocated_peak_bytes",
                                          "gpu_reserved_peak_bytes"};

}  // namespace

TrainOutcome run_training(const Config& cfg, const comm::Comms& comms) {
  comm::Communicator& comm = comms.host;  // control and scalars; the engine alone uses comms.device
  const int rank = comm.rank(), world = comm.size();
  const bool lead = rank == 0;
  const TrainSection& tr = cfg.train;
  const int64_t per_rank = tr.global_batch_size / world;
  LETHE_CHECK_INPUT(
      tr.global_batch_size % (tr.micro_batch_size * world) == 0,
      "train.global_batch_size ({}) must be a multiple of train.micro_batch_size ({}) x ranks ({}); "
      "change one of them",
      tr.global_batch_size, tr.micro_batch_size, world);
  const int64_t accum = per_rank / tr.micro_batch_size;

  model::CausalLm model = make_model(cfg, comms.where);
  const model::ModelConfig& arch = model->config();
  // Token rows stay on the host; each micro-batch is copied to the device as it is needed (comm::to_device).
  const torch::Tensor rows = load_rows(cfg.data, arch.vocab_size());
  LETHE_CHECK_INPUT(rows.size(0) >= tr.global_batch_size, "{}: {} rows are fewer than one global batch ({})",
                    cfg.data.train_path, rows.size(0), tr.global_batch_size);
  LETHE_CHECK_INPUT(rows.size(1) <= arch.max_position_embeddings(),
                    "{}: rows of {} tokens exceed the model's {} positions; set data.seq_len",
                    cfg.data.train_path, rows.size(1), arch.max_position_embeddings());
  const int64_t tokens_per_step = tr.global_batch_size * (rows.size(1) - 1);  // every next token is a label

  const fs::path run_dir = fs::path(cfg.run.output_dir) / cfg.run.name, ckpt_root = run_dir / "checkpoints";
  const std::string resolved = save_resolved_config(cfg, run_dir, lead);

  model->train();
  const zero::EngineOptions eo = engine_options(cfg, cfg.optimizer.adamw, cfg.optimizer.max_grad_norm);
  zero::ZeroEngine engine(*model, comms.device, eo);
  const zero::FlatLayout& layout = engine.layout();
  spdlog::debug("rss with data and the ZeRO engine: {} MiB (peak {} MiB)", current_rss_bytes() >> 20,
                peak_rss_bytes() >> 20);
  data::GlobalBatchSampler sampler(rows.size(0), tr.global_batch_size, cfg.runtime.seed, cfg.data.shuffle);

  // Resume.
  io::TrainProgress progress;
  const std::optional<fs::path> from = resume_target(cfg, comm, ckpt_root);
  if (from) {
    io::LoadReport lr = io::load_checkpoint(*from, engine, arch);
    progress = lr.content.progress;
    // The cursor counts global batches of this dataset: it means the same position only with the same rows
    // and global batch size.
    LETHE_CHECK_INPUT(
        progress.num_samples == rows.size(0) && progress.global_batch == tr.global_batch_size,
        "checkpoint {} was written with {} training rows and train.global_batch_size {}, this run has "
        "{} and {}: its data position would mean another one. Use the same data.train_path, "
        "data.max_rows and train.global_batch_size, or start a new run",
        from->string(), progress.num_samples, progress.global_batch, rows.size(0), tr.global_batch_size);
    sampler.set_state(progress.sampler);
    if (lead)
      spdlog::info("resumed from {} (step {}, saved by {} rank(s), now {}): {:.1f} MB in {:.2f} s",
                   from->string(), progress.step, lr.saved_world_size, world,
                   static_cast<double>(lr.bytes) / 1e6, lr.seconds);
  }

  if (lead) {
    spdlog::info(
        "train: {:.2f} M parameters, {} rank(s), ZeRO-{}, global batch {} = micro {} x accum {} x {} "
        "ranks, {} rows of {} tokens, steps {}..{}; resolved config in {}",
        static_cast<double>(layout.numel()) / 1e6, world, eo.stage, tr.global_batch_size, tr.micro_batch_size,
        accum, world, rows.size(0), rows.size(1), progress.step, tr.steps,
        (run_dir / "config.resolved.yaml").string());
  }
  std::optional<io::MetricsWriter> metrics;
  if (lead) {
    const auto keep = from ? std::optional<int64_t>(progress.step) : std::nullopt;
    metrics.emplace(run_dir / "metrics.h5", "train", kSeries, keep, cfg.metrics.flush_seconds);
    io::record_launch(run_dir / "metrics.h5", keep, world);
  }

  const zero::ScheduleOptions sched = cfg.optimizer.schedule_options(tr.steps);
  io::CheckpointContent content{{}, resolved, arch, {}};
  auto save = [&](int64_t step) {
    content.progress = {step, sampler.state(), rows.size(0), tr.global_batch_size};
    if (metrics) metrics->flush();
    const io::SaveReport r = io::save_checkpoint(ckpt_root, content, engine, cfg.checkpoint.keep_last, comm);
    if (lead)
      spdlog::info("checkpoint {} ({:.1f} MB on rank 0, {:.2f} s)", r.dir.string(),
                   static_cast<double>(r.bytes) / 1e6, r.seconds);
  };

  TrainOutcome out;
  const auto run_start = Clock::now();
  const int64_t first_step = progress.step;
  int64_t last_saved = progress.step;
  // Phase boundaries: host clocks, after waiting for the device when metrics.sync_timings asks for it.
  const auto mark = [&] {
    if (cfg.metrics.sync_timings) comm::synchronize(comms.where);
    return Clock::now();
  };
  for (int64_t step = progress.step; step < tr.steps; ++step) {
    comm::reset_memory_peaks(comms.where);
    const auto t_step = mark();
    const comm::CommStats c0 = comms.device.stats(), h0 = comm.stats();
    const std::vector<int64_t> mine = data::rank_part(sampler.next(), rank, world);
    double fwd = 0, bwd = 0;
    // This rank's summed CE, kept on the device: read once per step, after the optimizer step.
    torch::Tensor loss_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(comms.where));
    for (int64_t a = 0; a < accum; ++a) {
      const auto t0 = mark();
      torch::Tensor idx = torch::tensor(std::vector<int64_t>(mine.begin() + a * tr.micro_batch_size,
                                                             mine.begin() + (a + 1) * tr.micro_batch_size));
      torch::Tensor ids = comm::to_device(rows.index_select(0, idx), comms.where);  // [micro, T]
      torch::Tensor hidden =
          model->forward(ids, {.compute_logits = false}).last_hidden_state;  // [micro, T, C]
      // Summed CE over this micro-batch's next tokens (the head applied in chunks, model/lm_loss.h), divided
      // by the global batch's token count: the sum of these over ranks and micro-steps is the global mean.
      torch::Tensor ce = model::next_token_ce_sum(hidden, model->head_weight(), ids);
      torch::Tensor loss = ce / static_cast<double>(tokens_per_step);
      loss_sum += ce.detach().to(torch::kDouble);
      const auto t1 = mark();
      fwd += std::chrono::duration<double>(t1 - t0).count();
      engine.backward(loss);
      bwd += std::chrono::duration<double>(mark() - t1).count();
    }
    const double lr = zero::lr_at(sched, step);
    const auto t2 = Clock::now();  // with metrics.sync_timings the last mark() waited for the device
    const double comm_before_step = comms.device.stats().seconds;
    const zero::StepResult res = engine.step(lr);  // reads the gradient norm: the device is done after it
    const double opt_and_comm = since(t2), comm_in_step = comms.device.stats().seconds - comm_before_step;
    const double global_loss =
        comm.all_reduce_double(loss_sum.item<double>()) / static_cast<double>(tokens_per_step);
    const int64_t stop = comm.all_reduce_int(stop_signal(), comm::ReduceOp::kMax);
    const comm::CommStats& c1 = comms.device.stats();
    const double step_s = since(t_step),
                 comm_s = c1.seconds - c0.seconds +
                          (&comm != &comms.device ? comm.stats().seconds - h0.seconds : 0.0);
    out.last_loss = global_loss;
    out.steps_done = step + 1;
    const comm::DeviceMemory gpu = comm::device_memory(comms.where);
    if (lead && res.skipped)
      spdlog::warn("step {}: the fp16 gradient overflowed at loss scale {:g}; update skipped, scale now {:g}",
                   step + 1, res.loss_scale, engine.loss_scale());

    if (lead) {
      const zero::MemoryReport mem = engine.memory();
      const double tps = static_cast<double>(tokens_per_step) / step_s;
      metrics->append(step + 1, {global_loss,
                                 lr,
                                 res.grad_norm,
                                 res.grad_norm_clipped,
                                 tps,
                                 step_s,
                                 fwd,
                                 bwd,
                                 comm_s,
                                 std::max(0.0, opt_and_comm - comm_in_step),
                                 static_cast<double>(c1.reduce_scatter_bytes - c0.reduce_scatter_bytes),
                                 static_cast<double>(c1.all_gather_bytes - c0.all_gather_bytes),
                                 static_cast<double>(c1.all_reduce_bytes - c0.all_reduce_bytes),
                                 static_cast<double>(mem.optimizer_bytes),
                                 static_cast<double>(mem.grad_bytes_peak),
                                 static_cast<double>(current_rss_bytes()),
                                 static_cast<double>(peak_rss_bytes()),
                                 res.loss_scale,
                                 static_cast<double>(gpu.allocated_peak),
                                 static_cast<double>(gpu.reserved_peak)});
      if ((step + 1) % tr.log_every == 0 || step + 1 == tr.steps || stop) {
        const double per_step = since(run_start) / static_cast<double>(step + 1 - first_step);
        const std::string gpu_peak =
            comms.where.is_cuda()
                ? fmt::format(" | gpu peak {:.2f} GiB",
                              static_cast<double>(gpu.allocated_peak) / static_cast<double>(1 << 30))
                : "";
        spdlog::info(
            "step {}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s | {:.2f} s/step "
            "(fwd {:.2f} bwd {:.2f} comm {:.2f}){} | eta {}",
            step + 1, tr.steps, global_loss, lr, res.grad_norm, tps, step_s, fwd, bwd, comm_s, gpu_peak,
            hms(per_step * static_cast<double>(tr.steps - step - 1)));
      }
    }
    if (stop) {
      if (lead)
        spdlog::warn("stop signal {} received: saving a checkpoint at step {} and exiting", stop, step + 1);
      save(step + 1);
      if (lead) io::record_stop(run_dir / "metrics.h5", step + 1, static_cast<int>(stop));
      out.stopped = true;
      return out;
    }
    if (cfg.checkpoint.every > 0 && (step + 1) % cfg.checkpoint.every == 0 && step + 1 < tr.steps) {
      save(step + 1);
      last_saved = step + 1;
    }
  }
  if (progress.step >= tr.steps) {
    if (lead)
      spdlog::info("the checkpoint is at step {}, train.steps is {}: nothing left to train", progress.step,
                   tr.steps);
  } else if (last_saved != tr.steps) {
    save(tr.steps);
  }
  if (metrics) metrics->flush();
  if (lead && tr.save_final) {
    model::save_hf_model(model, run_dir / "final", final_model_options(cfg));
    spdlog::info("final model: {}", (run_dir / "final").string());
  }
  return out;
}

}  // namespace lethe::train
