#include "io/metrics.h"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "io/hdf5.h"

namespace lethe::io {
namespace fs = std::filesystem;

MetricsWriter::MetricsWriter(fs::path file, std::vector<std::string> names, int64_t resume_step,
                             double flush_seconds)
    : file_(std::move(file)),
      names_(std::move(names)),
      rows_(names_.size()),
      flush_seconds_(flush_seconds),
      last_flush_(std::chrono::steady_clock::now()) {
  fs::create_directories(file_.parent_path());
  const bool fresh = resume_step == 0 || !fs::exists(file_);
  H5File f = fresh ? H5File::create(file_) : H5File::open(file_, /*writable=*/true);
  if (!f.exists("train/step")) f.create_series("train/step", /*integer=*/true);
  for (const auto& n : names_)
    if (!f.exists("train/" + n)) f.create_series("train/" + n, /*integer=*/false);
  if (!fresh) {
    // Keep the rows up to the resumed step: steps are increasing, so that is a prefix.
    const std::vector<int64_t> steps = f.read_series_int("train/step");
    const auto keep =
        static_cast<hsize_t>(std::upper_bound(steps.begin(), steps.end(), resume_step) - steps.begin());
    f.truncate_series("train/step", keep);
    for (const auto& n : names_)
      f.truncate_series("train/" + n, std::min(keep, f.series_length("train/" + n)));
  }
  f.close();
}

MetricsWriter::~MetricsWriter() {
  // Last chance for buffered rows: a reader may hold the file for a moment.
  for (int attempt = 0; attempt < 10 && !steps_.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    flush();
  }
  if (!steps_.empty())
    spdlog::error("metrics: {} rows could not be written to {}", steps_.size(), file_.string());
}

void MetricsWriter::append(int64_t step, const std::vector<double>& values) {
  steps_.push_back(static_cast<double>(step));
  for (size_t i = 0; i < names_.size(); ++i) rows_[i].push_back(i < values.size() ? values[i] : 0.0);
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_flush_).count();
  if (since >= flush_seconds_) flush();
}

void MetricsWriter::flush() {
  last_flush_ = std::chrono::steady_clock::now();
  if (steps_.empty()) return;
  // A reader holding the file open (h5py in a notebook) keeps HDF5's lock: then the rows stay buffered and
  // the next flush tries again. Metrics must never end a training run.
  try {
    H5File f = H5File::open(file_, /*writable=*/true);
    // Undo a partial earlier attempt: every series back to the shortest one.
    hsize_t rows = f.series_length("train/step");
    for (const auto& n : names_) rows = std::min(rows, f.series_length("train/" + n));
    f.truncate_series("train/step", rows);
    f.append_series("train/step", steps_);
    for (size_t i = 0; i < names_.size(); ++i) {
      f.truncate_series("train/" + names_[i], rows);
      f.append_series("train/" + names_[i], rows_[i]);
    }
    f.close();
  } catch (const std::exception& e) {
    spdlog::warn("metrics: {} rows kept in memory, will retry ({})", steps_.size(), e.what());
    return;
  }
  steps_.clear();
  for (auto& r : rows_) r.clear();
}

}  // namespace lethe::io
