#include "io/metrics.h"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "io/hdf5.h"

namespace lethe::io {
namespace fs = std::filesystem;

MetricsWriter::MetricsWriter(fs::path file, std::string group, std::vector<std::string> names,
                             std::optional<int64_t> keep_through, double flush_seconds)
    : file_(std::move(file)),
      group_(std::move(group)),
      names_(std::move(names)),
      rows_(names_.size()),
      flush_seconds_(flush_seconds),
      last_flush_(std::chrono::steady_clock::now()) {
  fs::create_directories(file_.parent_path());
  // A reader may hold the file for a moment: retry. A file HDF5 cannot open at all (a job killed in the
  // middle of a flush) is moved aside, so metrics never stop a run from starting or resuming.
  for (int attempt = 0;; ++attempt) {
    try {
      prepare(keep_through);
      return;
    } catch (const std::exception& e) {
      if (attempt < 10) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      const fs::path aside = file_.string() + ".unreadable";
      spdlog::warn("metrics: cannot open {} ({}); moving it to {} and starting a new file", file_.string(),
                   e.what(), aside.string());
      std::error_code ec;
      fs::rename(file_, aside, ec);
      prepare(std::nullopt);
      return;
    }
  }
}

void MetricsWriter::prepare(std::optional<int64_t> keep_through) {
  H5File f = fs::exists(file_) ? H5File::open(file_, /*writable=*/true) : H5File::create(file_);
  if (!f.exists(key("step"))) f.create_series(key("step"), /*integer=*/true);
  for (const auto& n : names_)
    if (!f.exists(key(n))) f.create_series(key(n), /*integer=*/false);
  // Keep the rows up to the resumed index (indices are increasing, so that is a prefix); none when fresh.
  const std::vector<int64_t> steps = f.read_series_int(key("step"));
  const auto keep =
      keep_through
          ? static_cast<hsize_t>(std::upper_bound(steps.begin(), steps.end(), *keep_through) - steps.begin())
          : hsize_t{0};
  f.truncate_series(key("step"), keep);
  kept_rows_ = static_cast<int64_t>(keep);
  for (const auto& n : names_) f.truncate_series(key(n), std::min(keep, f.series_length(key(n))));
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
    hsize_t rows = f.series_length(key("step"));
    for (const auto& n : names_) rows = std::min(rows, f.series_length(key(n)));
    f.truncate_series(key("step"), rows);
    f.append_series(key("step"), steps_);
    for (size_t i = 0; i < names_.size(); ++i) {
      f.truncate_series(key(names_[i]), rows);
      f.append_series(key(names_[i]), rows_[i]);
    }
    f.close();
  } catch (const std::exception& e) {
    spdlog::warn("metrics: {} rows kept in memory, will retry ({})", steps_.size(), e.what());
    return;
  }
  steps_.clear();
  for (auto& r : rows_) r.clear();
}

void write_table(const fs::path& file, const std::string& group,
                 const std::vector<std::pair<std::string, std::vector<double>>>& columns,
                 const std::vector<std::pair<std::string, std::string>>& strings) {
  std::string last_error;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    try {
      H5File f = fs::exists(file) ? H5File::open(file, /*writable=*/true) : H5File::create(file);
      if (f.exists(group)) f.remove(group);
      for (const auto& [name, v] : columns) f.write<double>(group + "/" + name, v.data(), {v.size()});
      for (const auto& [name, text] : strings) f.write_string(group + "/" + name, text);
      f.close();
      return;
    } catch (const std::exception& e) {
      last_error = e.what();
    }
  }
  spdlog::error("metrics: table {} could not be written to {} ({})", group, file.string(), last_error);
}

}  // namespace lethe::io
