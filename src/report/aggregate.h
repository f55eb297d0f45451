// `lethe report RUN...`: the paper-style table over finished lethe unlearn runs (ICU's exp0-exp4 seeds, say).
// Per run, "before" is the epoch-0 validation (and the utility suite's first run) and "after" the last
// validation (and its last run); the table gives mean ± std (n - 1) over runs of EL_n, MA, BLEU, BERT F1,
// entropy, every utility summary (Cls Avg, Dia Avg, Pile, Wikitext, …) and epochs to stop.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/run_data.h"

namespace lethe::report {

struct Column {
  std::string label;                  // "EL10", "Cls Avg"
  std::vector<double> before, after;  // one per run (NaN = not measured in that run)
};

struct Report {
  std::vector<std::string> runs;          // folder names
  std::vector<std::string> stop_reasons;  // per run
  std::vector<Column> columns;
  // Per-epoch curves: metric -> per run (epoch, value) series.
  std::vector<std::pair<std::string, std::vector<std::vector<std::pair<double, double>>>>> curves;
};

// InputError when a run is not a finished lethe unlearn run (names the folder and what is missing).
Report aggregate(const std::vector<RunData>& runs);

// Writes report.md, summary.csv (metric, stage, mean, std, n), runs.csv (one row per run) and one
// curves-<metric>.svg per curve into out_dir, each atomically. Returns the paths written.
std::vector<std::filesystem::path> write_report(const Report& r, const std::filesystem::path& out_dir,
                                                const std::string& title);

// The table as JSON: {runs, columns: {label: {before: {mean, std, n}, after: …}}}.
nlohmann::json report_json(const Report& r);

}  // namespace lethe::report
