#include "train/utility_eval.h"

#include <charconv>
#include <cmath>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/io.h"
#include "io/metrics.h"
#include "train/run_common.h"
#include "utility/readers.h"

namespace lethe::train {

PreparedSuite prepare_utility(const text::Tokenizer& tokenizer, const utility::Suite& suite,
                              const std::vector<utility::TaskSpec>& tasks, const model::ModelConfig& arch,
                              bool keep_going, comm::Communicator& comm) {
  const auto t0 = Clock::now();
  PreparedSuite p;
  std::vector<std::unique_ptr<utility::TaskRunner>> runners(tasks.size());
  std::vector<std::string> errors(tasks.size());
  torch::Tensor failed = torch::zeros({static_cast<int64_t>(tasks.size())}, torch::kDouble);
  for (size_t i = 0; i < tasks.size(); ++i) {
    try {
      runners[i] = std::make_unique<utility::TaskRunner>(suite, tasks[i], utility::read_task(tasks[i]),
                                                         tokenizer, arch);
    } catch (const InputError& e) {
      if (!keep_going) throw;
      errors[i] = e.what();
      failed[static_cast<int64_t>(i)] = 1.0;
    }
  }
  // A file one rank cannot read (no shared file system) must drop the task everywhere, or the ranks would
  // pair up different tasks' buffers.
  if (keep_going) comm.all_reduce(failed, comm::ReduceOp::kMax);
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (failed[static_cast<int64_t>(i)].item<double>() == 0.0) {
      p.runners.push_back(std::move(runners[i]));
      continue;
    }
    const std::string msg = errors[i].empty() ? "failed on another rank (see its message)" : errors[i];
    if (comm.rank() == 0 || !errors[i].empty()) spdlog::error("utility: {} (skipped: keep_going)", msg);
    p.failed.emplace_back(tasks[i].name, msg);
  }
  p.seconds = since(t0);
  return p;
}

UtilityReport run_utility(model::CausalLm& model, const PreparedSuite& prepared, comm::Communicator& comm) {
  const auto t0 = Clock::now();
  UtilityReport report;
  report.failed = prepared.failed;
  report.prepare_seconds = prepared.seconds;
  const bool was_training = model->is_training();
  model->eval();
  for (const auto& runner : prepared.runners) {
    const auto t = Clock::now();
    std::vector<double> values(static_cast<size_t>(runner->value_count()), 0.0);
    const int64_t batches = runner->batches();
    double last_log = 0;
    for (int64_t b = comm.rank(); b < batches; b += comm.size()) {
      runner->run(model, b, values);
      if (comm.rank() == 0 && since(t) - last_log > 30) {  // progress on long tasks, rank 0's share
        last_log = since(t);
        const double done = static_cast<double>(b + 1) / static_cast<double>(batches);
        spdlog::info("utility {}: batch {}/{} ({} elapsed, ~{} left)", runner->spec().name, b + 1, batches,
                     hms(since(t)), hms(since(t) / done * (1 - done)));
      }
    }
    torch::Tensor buf =
        torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kDouble);
    comm.all_reduce(buf);  // each slot was written by exactly one rank: the sum is that value, exactly
    utility::TaskResult r = runner->finish(values);
    r.seconds = since(t);
    if (comm.rank() == 0) spdlog::info("{}", utility_line(r));
    report.results.push_back(std::move(r));
  }
  if (was_training) model->train();
  report.seconds = since(t0);
  return report;
}

std::vector<std::pair<std::string, double>> utility_summary(const UtilityReport& r) {
  std::vector<std::pair<std::string, double>> out;
  double cls = 0, dia = 0;
  int cls_n = 0, dia_n = 0;
  for (const auto& t : r.results) {
    if (t.group == utility::Group::kCls) cls += t.metric("acc"), ++cls_n;
    if (t.group == utility::Group::kDia) dia += t.metric("f1"), ++dia_n;
  }
  if (cls_n) out.emplace_back("Cls Avg", cls / cls_n);
  if (dia_n) out.emplace_back("Dia Avg", dia / dia_n);
  for (const auto& t : r.results)
    if (t.kind == utility::TaskKind::kPerplexity && !t.column.empty())
      out.emplace_back(t.column, t.metric("ppl"));
  return out;
}

nlohmann::json utility_json(const UtilityReport& r) {
  nlohmann::json tasks = nlohmann::json::object(), summary = nlohmann::json::object(),
                 failed = nlohmann::json::object();
  const auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  for (const auto& t : r.results) {
    nlohmann::json j = {{"kind", utility::kind_name(t.kind)},
                        {"group", utility::group_name(t.group)},
                        {"n", t.n},
                        {"headline", t.headline},
                        {"seconds", t.seconds}};
    for (const auto& [k, v] : t.metrics) j[k] = num(v);
    tasks[t.name] = j;
  }
  for (const auto& [k, v] : utility_summary(r)) summary[k] = num(v);
  for (const auto& [k, v] : r.failed) failed[k] = v;
  return {{"tasks", tasks},
          {"summary", summary},
          {"failed", failed},
          {"seconds", r.seconds},
          {"prepare_seconds", r.prepare_seconds}};
}

void write_utility_tables(const std::filesystem::path& metrics_file, const std::string& group,
                          const UtilityReport& r) {
  for (const auto& t : r.results) io::write_table(metrics_file, group + "/" + t.name, t.columns, t.strings);
}

std::string utility_line(const utility::TaskResult& t) {
  std::string m;
  for (const auto& [k, v] : t.metrics)
    if (k.find("stderr") == std::string::npos && k != "tokens") m += fmt::format(" {} {:.4f}", k, v);
  return fmt::format("utility {} ({} {}, {:.1f} s):{}", t.name, t.n,
                     t.kind == utility::TaskKind::kPerplexity ? "windows" : "examples", t.seconds, m);
}

UtilityTracker::UtilityTracker(const UtilitySection& u, const std::filesystem::path& run_dir,
                               std::optional<int64_t> keep_through, const text::Tokenizer& tokenizer,
                               const model::ModelConfig& arch, comm::Communicator& comm)
    : u_(u), enabled_(u.every > 0 || u.at_start || u.at_end), lead_(comm.rank() == 0), run_dir_(run_dir) {
  const auto file = run_dir / "utility.json";
  if (lead_ && !keep_through && std::filesystem::exists(file)) std::filesystem::remove(file);  // a fresh run
  if (!enabled_) return;
  suite_ = std::make_unique<utility::Suite>(utility::load_suite(u.suite));
  const auto specs = utility::select_tasks(*suite_, u.tasks, u.limit);
  prepared_ = prepare_utility(tokenizer, *suite_, specs, arch, u.keep_going, comm);
  bool cls = false, dia = false;
  for (const auto& spec : specs) {
    series_.push_back(spec.name + "." + utility::headline_metric(utility::kind_of(spec.format)));
    cls = cls || spec.group == utility::Group::kCls;
    dia = dia || spec.group == utility::Group::kDia;
  }
  if (cls) series_.emplace_back("cls_avg");
  if (dia) series_.emplace_back("dia_avg");
  if (!lead_) return;
  writer_.emplace(run_dir / "metrics.h5", "utility", series_, keep_through, 0.0);
  if (keep_through && std::filesystem::exists(file)) {  // keep the history up to the checkpoint
    const nlohmann::json old = nlohmann::json::parse(read_text_file(file, "utility.json"), nullptr, false);
    if (old.is_discarded() || !old.contains("epochs") || !old["epochs"].is_object()) {
      spdlog::warn("{}: not a lethe utility.json; its history is replaced", file.string());
      return;
    }
    for (const auto& [k, v] : old["epochs"].items()) {
      int64_t epoch = -1;
      const auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), epoch);
      const bool ok = ec == std::errc() && ptr == k.data() + k.size() && v.is_object() &&
                      v.contains("summary") && v["summary"].is_object();
      if (!ok) spdlog::warn("{}: entry '{}' is not a utility result; dropped", file.string(), k);
      if (ok && epoch <= *keep_through) history_[k] = v;
    }
  }
}

void UtilityTracker::run(int64_t epoch, model::CausalLm& model, comm::Communicator& comm) {
  if (!enabled_ || epoch == last_epoch_) return;
  last_epoch_ = epoch;
  if (lead_)
    spdlog::info("utility suite after epoch {} ({} tasks of {})", epoch, prepared_.runners.size(), u_.suite);
  const UtilityReport rep = run_utility(model, prepared_, comm);
  if (!lead_) return;
  write_utility_tables(run_dir_ / "metrics.h5", fmt::format("utility_samples/epoch-{:04d}", epoch), rep);
  std::vector<double> row;
  const auto summary = utility_summary(rep);
  for (const std::string& name : series_) {
    double v = std::nan("");
    for (const auto& t : rep.results)
      if (name == t.name + "." + t.headline) v = t.metric(t.headline);
    for (const auto& [k, x] : summary)
      if ((k == "Cls Avg" && name == "cls_avg") || (k == "Dia Avg" && name == "dia_avg")) v = x;
    row.push_back(v);
  }
  writer_->append(epoch, row);
  writer_->flush();
  history_[std::to_string(epoch)] = utility_json(rep);
  const std::string text = nlohmann::json{{"suite", u_.suite}, {"epochs", history_}}.dump(2) + "\n";
  write_file_atomic(run_dir_ / "utility.json", {std::as_bytes(std::span(text.data(), text.size()))});
}

nlohmann::json UtilityTracker::summaries() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : history_.items()) out[k] = v.value("summary", nlohmann::json::object());
  return out;
}

}  // namespace lethe::train
