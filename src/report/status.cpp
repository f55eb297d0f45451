#include "report/status.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace lethe::report {
namespace {

using nlohmann::json;

json number(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

// Mean of the last k values.
double recent_mean(const std::vector<double>& v, size_t k) {
  if (v.empty()) return std::nan("");
  const size_t n = std::min(k, v.size());
  return std::accumulate(v.end() - static_cast<std::ptrdiff_t>(n), v.end(), 0.0) / static_cast<double>(n);
}

// The newest row of a group as {column: value}, without the index.
json last_row(const Series* s, const std::vector<std::string>& names) {
  if (!s || s->at("step").empty()) return nullptr;
  json out = json::object();
  for (const std::string& n : names)
    if (const auto it = s->find(n); it != s->end()) out[n] = number(it->second.back());
  return out;
}

std::string eta_text(const json& s) {
  if (s["eta_seconds"].is_null()) return "";
  const auto t = static_cast<int64_t>(s["eta_seconds"].get<double>());
  return fmt::format("{}:{:02d}:{:02d}", t / 3600, t / 60 % 60, t % 60);
}

}  // namespace

json run_status(const RunData& r) {
  json s = {{"run", r.dir.string()}, {"kind", r.is_unlearn() ? "unlearn" : "train"}};
  const Series* train = r.group("train");
  const std::vector<double>& steps = r.column("train", "step");
  s["step"] = steps.empty() ? json(0) : json(static_cast<int64_t>(steps.back()));
  s["metrics_age_seconds"] = r.metrics_age_seconds >= 0 ? json(r.metrics_age_seconds) : json(nullptr);
  const double step_s = recent_mean(r.column("train", "step_seconds"), 50);
  std::string state = r.groups.empty() ? "starting" : "running", detail;
  s["eta_seconds"] = nullptr;

  if (r.is_unlearn()) {
    const UnlearnSection& u = r.config.unlearn;
    const std::vector<double>& epochs = r.column("epoch", "step");
    const std::vector<double>& at = r.column("epoch", "steps");
    s["epoch"] = epochs.empty() ? json(nullptr) : json(static_cast<int64_t>(epochs.back()));
    s["max_epochs"] = u.max_epochs;
    const std::vector<double>& active = r.column("epoch", "active");  // after the newest validation
    s["active_pairs"] = active.empty() ? json(nullptr) : json(static_cast<int64_t>(active.back()));
    s["last"] = last_row(r.group("epoch"), {"el", "ma", "bleu", "bert_f1", "entropy", "val_loss", "active"});
    const std::vector<double>& stop = r.column("epoch", "stop");
    if (r.summary && !stop.empty() && stop.back() != 0) {
      state = "finished";
      detail = fmt::format("stopped on {} after {} epoch(s)", (*r.summary)["stop_reason"].get<std::string>(),
                           (*r.summary)["epochs"].dump());
    }
    // An epoch = its steps plus one validation; the steps of one epoch are the difference of two rows.
    if (state != "finished" && at.size() >= 2 && std::isfinite(step_s)) {
      const double per_epoch = at[at.size() - 1] - at[at.size() - 2];
      const double epoch_s = per_epoch * step_s + recent_mean(r.column("epoch", "seconds"), 5);
      const double into = steps.empty() ? 0 : steps.back() - at.back();  // steps of the current epoch
      const double left = static_cast<double>(u.max_epochs) - epochs.back();
      s["eta_seconds"] = std::max(0.0, left * epoch_s - into * step_s);
    }
  } else {
    const int64_t total = r.config.train.steps;
    s["steps_total"] = total;
    s["last"] = last_row(train, {"loss", "lr", "grad_norm", "tokens_per_s", "step_seconds"});
    if (!steps.empty() && static_cast<int64_t>(steps.back()) >= total) {
      state = "finished";
      detail = fmt::format("{} of {} steps", total, total);
    } else if (std::isfinite(step_s)) {
      s["eta_seconds"] = (static_cast<double>(total) - (steps.empty() ? 0 : steps.back())) * step_s;
    }
  }

  // Launches and stop signals (io/run_log.h): the newest stop after the newest start means "stopped".
  const std::vector<double>& starts = r.column("launches", "unix_time");
  const std::vector<double>& restarts = r.column("launches", "slurm_restart_count");
  const std::vector<double>& jobs = r.column("launches", "slurm_job_id");
  const std::vector<double>& stop_times = r.column("stops", "unix_time");
  s["launches"] = starts.size();
  const double slurm_restarts = restarts.empty() ? -1 : *std::max_element(restarts.begin(), restarts.end());
  s["requeues"] = slurm_restarts >= 0 ? static_cast<int64_t>(slurm_restarts)
                                      : static_cast<int64_t>(std::max<size_t>(starts.size(), 1) - 1);
  s["slurm_job_id"] =
      !jobs.empty() && jobs.back() >= 0 ? json(static_cast<int64_t>(jobs.back())) : json(nullptr);
  json stops = json::array();
  const std::vector<double>& stop_steps = r.column("stops", "step");
  const std::vector<double>& stop_signals = r.column("stops", "signal");
  for (size_t i = 0; i < std::min({stop_times.size(), stop_steps.size(), stop_signals.size()}); ++i)
    stops.push_back(
        {{"step", static_cast<int64_t>(stop_steps[i])}, {"signal", static_cast<int>(stop_signals[i])}});
  s["stops"] = stops;
  if (state != "finished" && !stops.empty() &&
      (starts.empty() || stop_times[stops.size() - 1] > starts.back())) {
    state = "stopped";
    detail = fmt::format("by signal {} at step {} (checkpoint saved); resume with --resume auto",
                         stops.back()["signal"].get<int>(), stops.back()["step"].get<int64_t>());
  } else if (state == "running" && r.metrics_age_seconds >= 0) {
    // Rows reach the file at least every flush_seconds and at every validation; a utility suite or a large
    // checkpoint writes nothing for a while. A file much older than all of that: the job is gone.
    const double epoch_s = recent_mean(r.column("epoch", "seconds"), 5);
    const double quiet =
        300 + 3 * std::max({r.config.metrics.flush_seconds, std::isfinite(step_s) ? step_s : 0.0,
                            std::isfinite(epoch_s) ? epoch_s : 0.0});
    if (r.metrics_age_seconds > quiet) state = "inactive";
    detail = fmt::format(
        "metrics.h5 written {:.0f} s ago{}", r.metrics_age_seconds,
        state == "inactive" ? ": killed, waiting in a queue, or in a long phase that logs nothing" : "");
  }
  s["state"] = state;
  s["detail"] = detail;
  s["last_checkpoint"] = r.checkpoint ? json{{"name", r.checkpoint->name},
                                             {"step", r.checkpoint->step},
                                             {"age_seconds", r.checkpoint->age_seconds}}
                                      : json(nullptr);
  return s;
}

std::string format_status(const json& s) {
  std::string out;
  auto line = [&out](const std::string& k, const std::string& v) { out += fmt::format("{:<16}{}\n", k, v); };
  line("run", s["run"].get<std::string>() + " (" + s["kind"].get<std::string>() + ")");
  const std::string detail = s["detail"].get<std::string>();
  line("state", s["state"].get<std::string>() + (detail.empty() ? "" : ": " + detail));
  if (s["kind"] == "unlearn") {
    line("epoch", fmt::format("{} of at most {} (step {})", s["epoch"].is_null() ? "-" : s["epoch"].dump(),
                              s["max_epochs"].dump(), s["step"].dump()));
    if (!s["active_pairs"].is_null()) line("active pairs", s["active_pairs"].dump());
  } else {
    line("step", fmt::format("{} of {}", s["step"].dump(), s["steps_total"].dump()));
  }
  if (!s["last"].is_null()) {
    std::string m;
    for (const char* k : {"el", "ma", "bleu", "bert_f1", "entropy", "val_loss", "loss", "lr", "grad_norm",
                          "tokens_per_s", "step_seconds"}) {
      if (!s["last"].contains(k)) continue;
      const json& v = s["last"][k];
      m += fmt::format("{}{} {}", m.empty() ? "" : " | ", k,
                       v.is_null() ? "-" : fmt::format("{:.4g}", v.get<double>()));
    }
    line(s["kind"] == "unlearn" ? "last validation" : "last step", m);
  }
  if (const std::string eta = eta_text(s); !eta.empty())
    line("eta", eta + (s["kind"] == "unlearn" ? " (to max_epochs; the thresholds may stop it sooner)" : ""));
  const json& c = s["last_checkpoint"];
  line("checkpoint", c.is_null() ? "none yet"
                                 : fmt::format("{} ({:.0f} s ago)", c["name"].get<std::string>(),
                                               c["age_seconds"].get<double>()));
  line("launches", fmt::format("{} ({} requeue(s){})", s["launches"].dump(), s["requeues"].dump(),
                               s["slurm_job_id"].is_null() ? "" : ", Slurm job " + s["slurm_job_id"].dump()));
  return out;
}

}  // namespace lethe::report
