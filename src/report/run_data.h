// What a run folder says about itself, read without touching the running job: config.resolved.yaml, the
// series of metrics.h5 (/train, /epoch, /utility, /launches, /stops; see io/metrics.h and io/run_log.h),
// unlearn.json and checkpoints/latest. Shared by `lethe status` (one run) and `lethe report` (many).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace lethe::report {

// One metrics.h5 group: column name -> values, every column as long as "step".
using Series = std::map<std::string, std::vector<double>>;

struct CheckpointInfo {
  std::string name;  // step-00000012
  int64_t step = 0;
  double age_seconds = 0;  // since its COMPLETE marker was written
};

struct RunData {
  std::filesystem::path dir;
  Config config;                          // config.resolved.yaml
  std::map<std::string, Series> groups;   // present groups only
  std::optional<nlohmann::json> summary;  // unlearn.json (lethe unlearn, once stopped)
  std::optional<CheckpointInfo> checkpoint;
  double metrics_age_seconds = -1;  // since metrics.h5 was last written; -1 = no file yet

  bool is_unlearn() const;  // unlearn.* drives it (an /epoch group, or unlearn.json), else lethe train
  const Series* group(const std::string& name) const;
  // The column, or an empty vector when the group or column is absent.
  const std::vector<double>& column(const std::string& group, const std::string& name) const;
};

// InputError naming the folder when it is not a lethe run (no config.resolved.yaml), or when a file in it
// is unreadable. A metrics.h5 held by the writer at that moment is retried for a few seconds.
RunData load_run(const std::filesystem::path& dir);

// Sample mean and standard deviation (n - 1) of the finite values; std is NaN below two values, both NaN
// with none.
struct Stat {
  double mean, std;
  int n;
};
Stat stat(const std::vector<double>& values);

}  // namespace lethe::report
