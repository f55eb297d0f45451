// Step-indexed scalars in <run>/metrics.h5 (rank 0 only). Series live under /<group>/<name> as 1-D
// float64 datasets (/<group>/step is int64, the index: optimizer step for /train, epoch for /epoch), all of
// equal length, row i = the i-th logged row. Several writers (groups) may share one file.
//
// The file is kept closed between flushes (append rows, close), so `h5py.File(path, "r")` can read it while
// the run goes on; a reader that catches a flush in progress gets a lock error and simply retries, and a
// flush that finds the file held by a reader keeps its rows and retries at the next one. Rows are
// buffered and flushed every `flush_seconds`, at checkpoints and at exit. On resume from step s, rows after
// s (logged by the interrupted run after its last checkpoint) are dropped, so the series stay one
// consistent history. Per-sample tables (write_table) sit beside the series.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lethe::io {

class MetricsWriter {
 public:
  // keep_through: on resume, keep the rows whose index is ≤ it; nullopt = a fresh run, drop the group's rows.
  MetricsWriter(std::filesystem::path file, std::string group, std::vector<std::string> names,
                std::optional<int64_t> keep_through, double flush_seconds);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // values: one per name, in the constructor's order.
  void append(int64_t step, const std::vector<double>& values);
  void flush();
  // Rows of the group kept from the file when the writer opened it (what an earlier launch logged).
  int64_t kept_rows() const { return kept_rows_; }

 private:
  std::string key(const std::string& name) const { return group_ + "/" + name; }
  void prepare(std::optional<int64_t> keep_through);  // create the series, drop rows after keep_through
  std::filesystem::path file_;
  std::string group_;
  std::vector<std::string> names_;
  std::vector<double> steps_;
  std::vector<std::vector<double>> rows_;  // per name
  double flush_seconds_;
  int64_t kept_rows_ = 0;
  std::chrono::steady_clock::time_point last_flush_;
};

// Writes one table: /<group>/<column> float64 [n] for each numeric column, and string datasets
// (e.g. JSON lists of texts); an existing group of that name is replaced. Retries while a reader holds the
// file; a table that still cannot be written is logged and skipped (metrics never end a run).
void write_table(const std::filesystem::path& file, const std::string& group,
                 const std::vector<std::pair<std::string, std::vector<double>>>& columns,
                 const std::vector<std::pair<std::string, std::string>>& strings);

}  // namespace lethe::io
