#include "train/unlearner.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "comm/device.h"
#include "core/error.h"
#include "core/io.h"
#include "core/signals.h"
#include "data/sampler.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "io/run_log.h"
#include "model/hf_checkpoint.h"
#include "prep/pairs.h"
#include "train/run_common.h"
#include "train/utility_eval.h"
#include "train/validation.h"
#include "unlearn/objective.h"
#include "unlearn/refine.h"
#include "zero/engine.h"

namespace lethe::train {
namespace fs = std::filesystem;
namespace {

const std::vector<std::string> kStepSeries = {"loss",
                                              "forget_ce",
                                              "neighbour_ce",
                                              "mismatch_ce",
                                              "kl",
                                              "active_pairs",
                                              "skipped",
                                              "lr",
                                              "grad_norm",
                                              "step_seconds",
                                              "loss_scale",
                                              "gpu_allocated_peak_bytes",
                                              "gpu_reserved_peak_bytes"};
const std::vector<std::string> kEpochSeries = {
    "el", "ma", "bleu", "bert_f1", "active", "val_loss", "distinct", "entropy", "seconds", "steps", "stop"};

// What only training needs on top of check_forget_rows: a batch that fits and neighbours that differ.
void check_pairs(const UnlearnSection& u, const prep::Pairs& p) {
  const int64_t n = p.forget_ids.size(0);
  LETHE_CHECK_INPUT(u.batch_size <= n,
                    "unlearn.batch_size = {} is larger than the forget set ({} pairs in {}); lower it",
                    u.batch_size, n, u.dataset);
  for (int64_t i = 0; i < n; ++i)
    LETHE_CHECK_INPUT(
        !p.forget_tokens[i].equal(p.neighbour_tokens[i]),
        "{}: pair {} (doc_id {}): the neighbour row equals its target, so its terms would cancel; "
        "re-run lethe prep (neighbours are searched among non-target rows)",
        u.dataset, i, p.forget_ids[i].item<int64_t>());
}

// Rank r's contiguous block of a global batch of pairs (sizes may differ by one: normalisation is global).
std::vector<int64_t> my_block(const std::vector<int64_t>& batch, int rank, int world) {
  const auto b = static_cast<int64_t>(batch.size());
  return {batch.begin() + rank * b / world, batch.begin() + (rank + 1) * b / world};
}

}  // namespace

UnlearnOutcome run_unlearning(const Config& cfg, const comm::Comms& comms, const text::Tokenizer& tokenizer,
                              const eval::TextScorer& bert) {
  comm::Communicator& comm = comms.host;  // control and scalars; the engine alone uses comms.device
  const UnlearnSection& u = cfg.unlearn;
  const int rank = comm.rank(), world = comm.size();
  const bool lead = rank == 0;
  LETHE_CHECK_INPUT(!cfg.model.path.empty(),
                    "model.path is empty: lethe unlearn needs the trained model to unlearn (an HF folder)");
  // ICU's stop rule ends a run at an epoch nobody knows in advance, so a decay has no end to aim at yet.
  LETHE_CHECK_INPUT(
      cfg.optimizer.schedule == zero::Schedule::kConstant && cfg.optimizer.warmup_steps == 0,
      "optimizer.schedule is {} with warmup_steps {}: lethe unlearn runs a constant learning rate "
      "(as ICU); set optimizer.schedule=constant and optimizer.warmup_steps=0",
      enum_name(cfg.optimizer.schedule), cfg.optimizer.warmup_steps);
  const prep::Pairs pairs = prep::read_pairs(u.dataset);
  model::CausalLm model = make_model(cfg, comms.where);
  const model::ModelConfig& arch = model->config();
  check_forget_rows(u, pairs, arch, tokenizer.vocab_size());
  check_pairs(u, pairs);
  const int64_t n = pairs.forget_ids.size(0), eos = arch.eos_token_id();
  const int64_t batch = u.batch_size > 0 ? u.batch_size : n;  // 0: the whole forget set per step (KU)
  const bool refine = u.refine == Refine::kPairs;
  const bool stop_or = u.stop_logic == StopLogic::kAuto ? unlearn::reference_stops_on_either(u.method)
                                                        : u.stop_logic == StopLogic::kOr;

  // ICU's "original model": a frozen copy of the starting weights (same file), for p in the KL term. It
  // costs one more set of parameters per rank (lethe plan counts it) instead of the reference's [N, T, V]
  // probability cache (5 GB for 128 pairs at 125M).
  std::optional<model::CausalLm> reference;
  if (unlearn::needs_reference(u.method)) {
    reference.emplace(make_model(cfg, comms.where));
    (*reference)->eval();
    for (auto& p : (*reference)->parameters()) p.set_requires_grad(false);
  }

  const fs::path run_dir = fs::path(cfg.run.output_dir) / cfg.run.name, ckpt_root = run_dir / "checkpoints";
  const fs::path metrics_file = run_dir / "metrics.h5";
  const std::string resolved = save_resolved_config(cfg, run_dir, lead);

  model->train();
  const zero::EngineOptions eo = engine_options(cfg, cfg.optimizer.adamw, cfg.optimizer.max_grad_norm);
  zero::ZeroEngine engine(*model, comms.device, eo);
  data::GlobalBatchSampler sampler(n, batch, cfg.runtime.seed, /*shuffle=*/true);
  const int64_t per_epoch = sampler.batches_per_epoch();
  if (lead && n % batch != 0)
    spdlog::warn(
        "unlearn: {} pairs are not a multiple of batch_size {}: each epoch drops a different {} pairs", n,
        batch, n % batch);

  // Method state: flags (1 = pair still trains), validations done (epoch 0 counts), stop reason.
  std::vector<uint8_t> flags(static_cast<size_t>(n), 1);
  int64_t validations = 0, step = 0, reason_code = 0;
  const std::optional<fs::path> from = resume_target(cfg, comm, ckpt_root);
  if (from) {
    io::LoadReport lr = io::load_checkpoint(*from, engine, arch);
    const io::TrainProgress& pr = lr.content.progress;
    LETHE_CHECK_INPUT(
        pr.num_samples == n && pr.global_batch == batch,
        "checkpoint {} was written for {} pairs and batch_size {}, this run has {} and {}; use the "
        "same unlearn.dataset and unlearn.batch_size, or start a new run",
        from->string(), pr.num_samples, pr.global_batch, n, batch);
    const auto& m = lr.content.method;
    LETHE_CHECK_INPUT(
        m.count("flags") && m.count("validations") && m.count("stop_reason"),
        "checkpoint {} holds no unlearning state (/method/flags): it was not written by lethe unlearn",
        from->string());
    torch::Tensor f = m.at("flags").to(torch::kLong);
    LETHE_CHECK_INPUT(f.numel() == n, "checkpoint {}: {} flags for {} pairs", from->string(), f.numel(), n);
    for (int64_t i = 0; i < n; ++i)  // refine none: every pair trains, whatever an earlier run judged
      flags[static_cast<size_t>(i)] = refine ? static_cast<uint8_t>(f[i].item<int64_t>()) : 1;
    validations = m.at("validations").item<int64_t>();
    reason_code = m.at("stop_reason").item<int64_t>();
    step = pr.step;
    sampler.set_state(pr.sampler);
    if (lead)
      spdlog::info("resumed from {} (step {}, {} validation(s) done, {} of {} pairs active)", from->string(),
                   step, validations, std::count(flags.begin(), flags.end(), 1), n);
  }
  std::optional<io::MetricsWriter> step_metrics, epoch_metrics;
  if (lead && !from)  // a fresh run: no stale tables or summary from an earlier run of that name
    for (const fs::path& f : {metrics_file, run_dir / "unlearn.json"}) fs::remove(f);
  UtilityTracker utility(cfg.utility, run_dir, from ? std::optional<int64_t>(validations - 1) : std::nullopt,
                         tokenizer, arch, comm);
  if (lead) {
    const std::optional<int64_t> keep_steps = from ? std::optional<int64_t>(step) : std::nullopt;
    const std::optional<int64_t> keep_epochs = from ? std::optional<int64_t>(validations - 1) : std::nullopt;
    step_metrics.emplace(metrics_file, "train", kStepSeries, keep_steps, cfg.metrics.flush_seconds);
    epoch_metrics.emplace(metrics_file, "epoch", kEpochSeries, keep_epochs, 0.0);
    io::record_launch(metrics_file, keep_steps, world);
    spdlog::info(
        "unlearn: method {}, {} pairs from {}, {} rank(s), ZeRO-{}, batch {} ({} steps/epoch), lr {:.1e}, "
        "refinement {}, stop when MA < {} {} EL{} < {} (max {} epochs); config in {}",
        enum_name(u.method), n, u.dataset, world, eo.stage, batch, per_epoch, cfg.optimizer.adamw.lr,
        !refine ? "none (every pair trains)"
        : bert  ? "BERTScore F1 + BLEU"
                : "BLEU only (no unlearn.bert_path)",
        u.acc, stop_or ? "or" : "and", u.el_n, u.el, u.max_epochs,
        (run_dir / "config.resolved.yaml").string());
  }

  io::CheckpointContent content{{}, resolved, arch, {}};
  auto save = [&] {
    content.progress = {step, sampler.state(), n, batch};
    torch::Tensor f = torch::empty({n}, torch::kLong);
    for (int64_t i = 0; i < n; ++i) f[i] = static_cast<int64_t>(flags[static_cast<size_t>(i)]);
    content.method = {{"flags", f},
                      {"validations", torch::full({1}, validations, torch::kLong)},
                      {"stop_reason", torch::full({1}, reason_code, torch::kLong)}};
    if (step_metrics) step_metrics->flush();
    const io::SaveReport r = io::save_checkpoint(ckpt_root, content, engine, cfg.checkpoint.keep_last, comm);
    if (lead) spdlog::info("checkpoint {} ({:.2f} s)", r.dir.string(), r.seconds);
  };

  const unlearn::Thresholds th{u.f1, u.bleu, u.acc, u.el, stop_or};
  const eval::ForgetScoreOptions so = forget_score_options(cfg, eos);
  const eval::ForgetRows validation_rows = forget_rows(pairs, so, tokenizer);
  UnlearnOutcome out;
  auto validate = [&](int64_t epoch) {
    Validation v = validate_sharded(model, validation_rows, so, tokenizer, bert, comm);
    if (refine) flags = unlearn::judge_pairs(v.scores.bleu, v.scores.bert_f1, th);
    ++validations;
    const auto active = std::count(flags.begin(), flags.end(), 1);
    auto reason = unlearn::StopReason::kNone;
    if (epoch > 0) reason = unlearn::stop_rule(v.ma, v.el, flags, epoch, u.max_epochs, th);
    reason_code = static_cast<int64_t>(reason);
    out.el = v.el;
    out.ma = v.ma;
    if (lead) {
      write_validation_table(metrics_file, epoch, v, pairs.forget_ids, flags);
      epoch_metrics->append(
          epoch, {v.el, v.ma, v.bleu, v.bert_f1, static_cast<double>(active), v.val_loss, v.distinct,
                  v.entropy, v.seconds, static_cast<double>(step), static_cast<double>(reason_code)});
      spdlog::info(
          "epoch {} validation | EL{} {:.4f} | MA {:.4f} | BLEU {:.4f}{} | active {}/{} | loss {:.4f} | "
          "{:.1f} s{}",
          epoch, u.el_n, v.el, v.ma, v.bleu, v.has_bert ? fmt::format(" | BERT F1 {:.4f}", v.bert_f1) : "",
          active, n, v.val_loss, v.seconds,
          reason != unlearn::StopReason::kNone ? fmt::format(" | stop: {}", unlearn::stop_reason_name(reason))
                                               : "");
    }
    return reason;
  };

  if (validations == 0) {
    validate(0);  // epoch 0: sets the flags, never stops
    if (utility.at_start() || utility.due(0)) utility.run(0, model, comm);  // the "before" column
  }
  const auto run_start = Clock::now();
  const bool finished_before = from && reason_code != 0;
  if (finished_before) {
    // Nothing to do; unlearn.json and final/ from the run that stopped stay as they are.
    if (lead)
      spdlog::info("the checkpoint's run already stopped ({}): nothing left to train; see {}",
                   unlearn::stop_reason_name(static_cast<unlearn::StopReason>(reason_code)),
                   (run_dir / "unlearn.json").string());
    out.epochs = validations - 1;
    out.stop_reason = std::string(unlearn::stop_reason_name(static_cast<unlearn::StopReason>(reason_code)));
    out.el = out.ma = std::nan("");
    return out;
  }
  while (reason_code == 0) {
    const int64_t epoch = validations;  // the training epoch to run, 1-based
    const data::SamplerState st = sampler.state();
    int64_t done = st.epoch == epoch - 1 ? st.batch : 0;
    for (; done < per_epoch; ++done) {
      comm::reset_memory_peaks(comms.where);
      const auto t0 = Clock::now();
      std::vector<int64_t> mine;
      for (int64_t i : my_block(sampler.next(), rank, world))
        if (flags[static_cast<size_t>(i)]) mine.push_back(i);
      const torch::Tensor idx = torch::tensor(mine, torch::kLong);
      // Counted on the host copy (host data, no device read), trained on the device copy: the stored rows or
      // ICU's re-encoded ones (prep.rows), with their masks when some row is padded.
      const data::ModelRows forget_host = data::select_rows(pairs.forget_input, idx);
      const data::ModelRows neighbour_host = data::select_rows(pairs.neighbour_input, idx);
      const unlearn::Counts local = unlearn::count_labels(forget_host.ids, neighbour_host.ids, eos);
      auto on_device = [&](const torch::Tensor& t) {
        return t.defined() ? comm::to_device(t, comms.where) : t;
      };
      const torch::Tensor forget = on_device(forget_host.ids), forget_mask = on_device(forget_host.mask);
      const torch::Tensor neighbour = on_device(neighbour_host.ids);
      const torch::Tensor neighbour_mask = on_device(neighbour_host.mask);
      torch::Tensor g =
          torch::tensor({local.forget_tokens, local.neighbour_tokens, local.forget_as_neighbour_tokens,
                         local.positions, static_cast<double>(mine.size())},
                        torch::kDouble);
      comm.all_reduce(g);
      const unlearn::Counts global{g[0].item<double>(), g[1].item<double>(), g[2].item<double>(),
                                   g[3].item<double>()};
      const auto active = static_cast<int64_t>(g[4].item<double>());
      const int64_t micro =
          u.micro_batch_size > 0 ? u.micro_batch_size : std::max<int64_t>(1, forget.size(0));
      // Every rank runs the same number of backward passes (ZeRO-2 reduces inside each one).
      const int64_t micro_steps =
          comm.all_reduce_int((forget.size(0) + micro - 1) / micro, comm::ReduceOp::kMax);
      // This rank's loss and term sums, accumulated on the device and read once per step.
      torch::Tensor sums =
          torch::zeros({5}, torch::TensorOptions().dtype(torch::kDouble).device(comms.where));
      zero::StepResult res{};
      const bool skip = active == 0 && u.empty_batch == EmptyBatch::kSkip;
      if (!skip) {
        for (int64_t m = 0; m < std::max<int64_t>(1, micro_steps); ++m) {
          const int64_t b = std::min(forget.size(0), m * micro), e = std::min(forget.size(0), b + micro);
          auto rows = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, b, e - b) : t; };
          const unlearn::Terms terms = unlearn::compute_terms(
              u.method, {u.uw, u.lw, u.kl}, model, reference ? &*reference : nullptr, rows(forget),
              rows(neighbour), eos, global, rows(forget_mask), rows(neighbour_mask));
          sums += terms.sums();
          engine.backward(terms.loss);
        }
        res = engine.step(cfg.optimizer.adamw.lr);
      } else {
        res.loss_scale = engine.loss_scale();
      }
      ++step;
      torch::Tensor s = sums.cpu();
      comm.all_reduce(s);
      const int64_t stop = comm.all_reduce_int(stop_signal(), comm::ReduceOp::kMax);
      if (lead) {
        auto ratio = [](double a, double b) { return b > 0 ? a / b : std::nan(""); };
        const double step_s = since(t0);
        const comm::DeviceMemory gpu = comm::device_memory(comms.where);
        if (res.skipped)
          spdlog::warn(
              "step {}: the fp16 gradient overflowed at loss scale {:g}; update skipped, scale now {:g}",
              step, res.loss_scale, engine.loss_scale());
        step_metrics->append(
            step, {s[0].item<double>(), ratio(s[1].item<double>(), global.forget_tokens),
                   ratio(s[2].item<double>(), global.neighbour_tokens),
                   ratio(s[3].item<double>(), global.forget_as_neighbour_tokens),
                   ratio(s[4].item<double>(), global.positions), static_cast<double>(active),
                   skip ? 1.0 : 0.0, cfg.optimizer.adamw.lr, res.grad_norm, step_s, res.loss_scale,
                   static_cast<double>(gpu.allocated_peak), static_cast<double>(gpu.reserved_peak)});
        if (step % cfg.train.log_every == 0 || done + 1 == per_epoch)
          spdlog::info("epoch {} step {}/{} | loss {:.4f} | active pairs {} | {:.2f} s/step{} | elapsed {}",
                       epoch, done + 1, per_epoch, s[0].item<double>(), active, step_s,
                       skip ? " (skipped: no active pair)" : "", hms(since(run_start)));
      }
      if (stop) {
        if (lead) spdlog::warn("stop signal {}: saving a checkpoint at step {} and exiting", stop, step);
        save();
        if (lead) io::record_stop(metrics_file, step, static_cast<int>(stop));
        out.stopped_by_signal = true;
        out.epochs = epoch - 1;
        return out;
      }
    }
    const auto reason = validate(epoch);
    if (utility.due(epoch)) utility.run(epoch, model, comm);
    const int64_t stop = comm.all_reduce_int(stop_signal(), comm::ReduceOp::kMax);
    const bool due = cfg.checkpoint.every > 0 && epoch % cfg.checkpoint.every == 0;
    if (reason == unlearn::StopReason::kNone && (due || stop)) save();
    if (stop && reason == unlearn::StopReason::kNone) {
      if (lead) io::record_stop(metrics_file, step, static_cast<int>(stop));
      out.stopped_by_signal = true;
      out.epochs = epoch;
      return out;
    }
  }
  out.epochs = validations - 1;
  out.stop_reason = std::string(unlearn::stop_reason_name(static_cast<unlearn::StopReason>(reason_code)));
  save();
  if (step_metrics) step_metrics->flush();
  // final/ and unlearn.json first: a failure or a kill during the "after" suite must not lose them.
  auto write_summary = [&] {
    nlohmann::json summary = {{"epochs", out.epochs},
                              {"stop_reason", out.stop_reason},
                              {"el", out.el},
                              {"ma", out.ma},
                              {"steps", step},
                              {"pairs", n},
                              {"active", std::count(flags.begin(), flags.end(), 1)}};
    if (utility.enabled()) summary["utility"] = utility.summaries();
    const std::string text = summary.dump(2) + "\n";
    write_file_atomic(run_dir / "unlearn.json", {std::as_bytes(std::span(text.data(), text.size()))});
  };
  if (lead) {
    if (u.save_final) {
      model::save_hf_model(model, run_dir / "final", final_model_options(cfg));
      spdlog::info("unlearned model: {}", (run_dir / "final").string());
    }
    write_summary();
  }
  if (utility.at_end()) {
    utility.run(out.epochs, model, comm);  // the "after" column
    if (lead) write_summary();
  }
  return out;
}

}  // namespace lethe::train
