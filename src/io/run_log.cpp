#include "io/run_log.h"

#include <chrono>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "io/metrics.h"

namespace lethe::io {
namespace {

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Every earlier row is kept (an index no row exceeds).
constexpr int64_t kKeepAll = std::numeric_limits<int64_t>::max();
const std::vector<std::string> kStopSeries = {"signal", "unix_time"};

// The variable as an integer, -1 when unset or not a number (outside Slurm).
int64_t env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  return *end == '\0' ? static_cast<int64_t>(x) : -1;
}

}  // namespace

void record_launch(const std::filesystem::path& metrics_file, std::optional<int64_t> resumed_from_step,
                   int world_size) {
  MetricsWriter w(metrics_file, "launches",
                  {"resumed_from_step", "world_size", "unix_time", "slurm_job_id", "slurm_restart_count",
                   "slurm_array_job_id", "slurm_array_task_id"},
                  resumed_from_step ? std::optional(kKeepAll) : std::nullopt, 0.0);
  if (!resumed_from_step)
    MetricsWriter(metrics_file, "stops", kStopSeries, std::nullopt, 0.0);  // a fresh run
  auto d = [](int64_t v) { return static_cast<double>(v); };
  w.append(w.kept_rows(), {d(resumed_from_step.value_or(-1)), d(world_size), unix_time(),
                           d(env_int("SLURM_JOB_ID")), d(env_int("SLURM_RESTART_COUNT")),
                           d(env_int("SLURM_ARRAY_JOB_ID")), d(env_int("SLURM_ARRAY_TASK_ID"))});
}

void record_stop(const std::filesystem::path& metrics_file, int64_t step, int signal) {
  MetricsWriter w(metrics_file, "stops", kStopSeries, kKeepAll, 0.0);
  w.append(step, {static_cast<double>(signal), unix_time()});
}

}  // namespace lethe::io
