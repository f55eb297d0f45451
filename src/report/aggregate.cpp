#include "report/aggregate.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"
#include "report/svg.h"

namespace lethe::report {
namespace fs = std::filesystem;
namespace {

struct EpochMetric {
  const char* key;  // /epoch column
  const char* label;
};
// clang-format off
const EpochMetric kEpochMetrics[] = {{"el", "EL"}, {"ma", "MA"}, {"bleu", "BLEU"}, {"bert_f1", "BERT F1"},
                                     {"entropy", "Entropy"}};
const EpochMetric kCurves[] = {{"el", "EL"}, {"ma", "MA"}, {"bleu", "BLEU"}, {"bert_f1", "BERT F1"},
                               {"entropy", "Entropy"}, {"active", "Active pairs"}};
// clang-format on

double first(const std::vector<double>& v) {
  return v.empty() ? std::nan("") : v.front();
}
double last(const std::vector<double>& v) {
  return v.empty() ? std::nan("") : v.back();
}

std::string cell(const Stat& s) {
  if (s.n == 0) return "—";
  return std::isfinite(s.std) ? fmt::format("{:.4g} ± {:.2g}", s.mean, s.std) : fmt::format("{:.4g}", s.mean);
}

std::string num(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : "";
}

// A CSV field (RFC 4180: quoted when it holds a comma, quote or line break) and a markdown table cell.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c == '\n' ? ' ' : c);
  return out;
}

std::string file_key(std::string label) {
  std::transform(label.begin(), label.end(), label.begin(),
                 [](unsigned char c) { return std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '-'; });
  return label;
}

void save(const fs::path& p, const std::string& text) {
  write_file_atomic(p, {std::as_bytes(std::span(text.data(), text.size()))});
}

}  // namespace

Report aggregate(const std::vector<RunData>& runs) {
  LETHE_CHECK_INPUT(!runs.empty(), "lethe report: no runs given");
  Report r;
  const std::string el = fmt::format("EL{}", runs.front().config.unlearn.el_n);
  for (const EpochMetric& m : kEpochMetrics)
    r.columns.push_back({m.key == std::string("el") ? el : m.label, {}, {}});
  std::map<std::string, Column> utility;  // label -> values, filled per run (NaN where a run lacks it)
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    LETHE_CHECK_INPUT(run.is_unlearn() && run.group("epoch"),
                      "{}: not a lethe unlearn run (no /epoch series in metrics.h5)", run.dir.string());
    LETHE_CHECK_INPUT(run.summary.has_value(),
                      "{}: the run has not finished (no unlearn.json); lethe status {} shows where it is, "
                      "or leave it out",
                      run.dir.string(), run.dir.string());
    r.runs.push_back(run.dir.filename().string());
    r.stop_reasons.push_back((*run.summary)["stop_reason"].get<std::string>());
    for (size_t k = 0; k < std::size(kEpochMetrics); ++k) {
      const std::vector<double>& v = run.column("epoch", kEpochMetrics[k].key);
      r.columns[k].before.push_back(first(v));
      r.columns[k].after.push_back(last(v));
    }
    // Utility summaries per suite run, keyed by epoch: the first is "before", the last "after".
    const nlohmann::json u = run.summary->value("utility", nlohmann::json::object());
    std::vector<std::pair<int64_t, const nlohmann::json*>> by_epoch;
    for (const auto& [k, v] : u.items()) {
      int64_t epoch = -1;
      const auto [end, ec] = std::from_chars(k.data(), k.data() + k.size(), epoch);
      LETHE_CHECK_INPUT(ec == std::errc() && end == k.data() + k.size() && v.is_object(),
                        "{}: unlearn.json utility entry '{}' is not an epoch number with a summary object",
                        run.dir.string(), k);
      by_epoch.emplace_back(epoch, &v);
    }
    std::sort(by_epoch.begin(), by_epoch.end());
    for (size_t s = 0; s < by_epoch.size(); ++s)
      for (const auto& [label, v] : by_epoch[s].second->items()) {
        Column& c = utility[label];
        c.label = label;
        c.before.resize(i + 1, std::nan(""));
        c.after.resize(i + 1, std::nan(""));
        // A non-finite value (a diverged model's perplexity) is stored as null: not measured.
        const double x = v.is_number() ? v.get<double>() : std::nan("");
        if (s == 0) c.before[i] = x;
        if (s + 1 == by_epoch.size()) c.after[i] = x;
      }
  }
  for (auto& [label, c] : utility) {
    c.before.resize(runs.size(), std::nan(""));
    c.after.resize(runs.size(), std::nan(""));
    r.columns.push_back(std::move(c));
  }
  Column epochs{"Epochs", std::vector<double>(runs.size(), std::nan("")), {}};
  for (const RunData& run : runs) epochs.after.push_back((*run.summary)["epochs"].get<double>());
  r.columns.push_back(std::move(epochs));
  for (const EpochMetric& m : kCurves) {
    std::vector<std::vector<std::pair<double, double>>> per_run;
    bool any = false;
    for (const RunData& run : runs) {
      const std::vector<double>& x = run.column("epoch", "step");
      const std::vector<double>& y = run.column("epoch", m.key);
      per_run.emplace_back();
      for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
        per_run.back().emplace_back(x[i], y[i]);
        any = any || std::isfinite(y[i]);
      }
    }
    if (any) r.curves.emplace_back(m.key == std::string("el") ? el : m.label, std::move(per_run));
  }
  return r;
}

nlohmann::json report_json(const Report& r) {
  auto stat_json = [](const std::vector<double>& v) {
    const Stat s = stat(v);
    auto n = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
    return nlohmann::json{{"mean", n(s.mean)}, {"std", n(s.std)}, {"n", s.n}};
  };
  nlohmann::json cols = nlohmann::json::object();
  for (const Column& c : r.columns)
    cols[c.label] = {{"before", stat_json(c.before)}, {"after", stat_json(c.after)}};
  return {{"runs", r.runs}, {"stop_reasons", r.stop_reasons}, {"columns", cols}};
}

namespace {

// metric,stage,mean,std,n — one row per metric and stage.
std::string summary_csv(const Report& r) {
  std::string csv = "metric,stage,mean,std,n\n";
  for (const Column& c : r.columns)
    for (const auto& [stage, v] : {std::pair{"before", &c.before}, std::pair{"after", &c.after}}) {
      const Stat s = stat(*v);
      csv += fmt::format("{},{},{},{},{}\n", csv_field(c.label), stage, num(s.mean), num(s.std), s.n);
    }
  return csv;
}

// One row per run: its stop reason and every metric before and after.
std::string runs_csv(const Report& r) {
  std::string csv = "run,stop_reason";
  for (const Column& c : r.columns)
    csv += fmt::format(",{},{}", csv_field(c.label + " before"), csv_field(c.label + " after"));
  csv += "\n";
  for (size_t i = 0; i < r.runs.size(); ++i) {
    csv += fmt::format("{},{}", csv_field(r.runs[i]), csv_field(r.stop_reasons[i]));
    for (const Column& c : r.columns) csv += fmt::format(",{},{}", num(c.before[i]), num(c.after[i]));
    csv += "\n";
  }
  return csv;
}

// The paper-style table (one row per model state, one column per metric), then one row per run.
std::string markdown(const Report& r, const std::string& title) {
  const size_t n = r.runs.size();
  std::string md = fmt::format("# {}\n\n{} run(s): ", title, n);
  for (size_t i = 0; i < n; ++i)
    md += fmt::format("{}`{}` ({})", i ? ", " : "", md_cell(r.runs[i]), md_cell(r.stop_reasons[i]));
  md +=
      ".\n\nMean ± sample std (n - 1) over the runs; before = epoch-0 validation and the first utility run, "
      "after = the last ones.\n\n| |";
  std::string rule = "|---|", before = "| before |", after = "| after |";
  for (const Column& c : r.columns) {
    md += fmt::format(" {} |", md_cell(c.label));
    rule += "---|";
    before += fmt::format(" {} |", cell(stat(c.before)));
    after += fmt::format(" {} |", cell(stat(c.after)));
  }
  md += fmt::format("\n{}\n{}\n{}\n\n## Per run (after)\n\n| run | stop |", rule, before, after);
  for (const Column& c : r.columns) md += fmt::format(" {} |", md_cell(c.label));
  md += "\n|---|---|";
  for (size_t k = 0; k < r.columns.size(); ++k) md += "---|";
  md += "\n";
  for (size_t i = 0; i < n; ++i) {
    md += fmt::format("| {} | {} |", md_cell(r.runs[i]), md_cell(r.stop_reasons[i]));
    for (const Column& c : r.columns)
      md += std::isfinite(c.after[i]) ? fmt::format(" {:.4g} |", c.after[i]) : std::string(" — |");
    md += "\n";
  }
  return md;
}

// One curve: at each epoch, mean ± std over the runs that reached it.
Band epoch_band(const std::vector<std::vector<std::pair<double, double>>>& per_run) {
  std::map<double, std::vector<double>> at;
  for (const auto& series : per_run)
    for (const auto& [x, y] : series) at[x].push_back(y);
  Band b{fmt::format("mean ± std, {} run(s)", per_run.size()), {}, {}, {}, {}};
  for (const auto& [x, ys] : at) {
    const Stat s = stat(ys);
    const double sd = std::isfinite(s.std) ? s.std : 0.0;
    b.x.push_back(x), b.mean.push_back(s.mean), b.lo.push_back(s.mean - sd), b.hi.push_back(s.mean + sd);
  }
  return b;
}

}  // namespace

std::vector<fs::path> write_report(const Report& r, const fs::path& out, const std::string& title) {
  fs::create_directories(out);
  std::vector<fs::path> written;
  std::string md = markdown(r, title);
  if (!r.curves.empty()) md += "\n## Per-epoch curves (mean ± std over the runs that reached the epoch)\n\n";
  for (const auto& [label, per_run] : r.curves) {
    const fs::path svg = out / fmt::format("curves-{}.svg", file_key(label));
    save(svg, render_svg({label + " per epoch", "epoch", label, {epoch_band(per_run)}}));
    written.push_back(svg);
    md += fmt::format("![{}]({})\n", label, svg.filename().string());
  }
  for (const auto& [name, text] : {std::pair{"report.md", md}, std::pair{"summary.csv", summary_csv(r)},
                                   std::pair{"runs.csv", runs_csv(r)}}) {
    save(out / name, text);
    written.push_back(out / name);
  }
  return written;
}

}  // namespace lethe::report
