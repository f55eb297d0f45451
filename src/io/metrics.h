// Step-indexed scalars in <run>/metrics.h5 (rank 0 only). Series live under /train/<name> as 1-D
// float64 datasets (/train/step is int64), all of equal length, row i = the i-th logged step.
//
// The file is kept closed between flushes (append rows, close), so `h5py.File(path, "r")` can read it while
// the run goes on; a reader that catches a flush in progress gets a lock error and simply retries, and a
// flush that finds the file held by a reader keeps its rows and retries at the next one. Rows are
// buffered and flushed every `flush_seconds`, at checkpoints and at exit. On resume from step s, rows after
// s (logged by the interrupted run after its last checkpoint) are dropped, so the series stay one
// consistent history.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lethe::io {

class MetricsWriter {
 public:
  MetricsWriter(std::filesystem::path file, std::vector<std::string> names, int64_t resume_step,
                double flush_seconds);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // values: one per name, in the constructor's order.
  void append(int64_t step, const std::vector<double>& values);
  void flush();

 private:
  std::filesystem::path file_;
  std::vector<std::string> names_;
  std::vector<double> steps_;
  std::vector<std::vector<double>> rows_;  // per name
  double flush_seconds_;
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace lethe::io
