#include "report/run_data.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "io/hdf5.h"

namespace lethe::report {
namespace fs = std::filesystem;
namespace {

double age_of(const fs::path& p) {
  const auto t = fs::last_write_time(p);
  return std::chrono::duration<double>(fs::file_time_type::clock::now() - t).count();
}

const char* const kGroups[] = {"train", "epoch", "utility", "launches", "stops"};

std::map<std::string, Series> read_series(const fs::path& file) {
  std::map<std::string, Series> out;
  io::H5File f = io::H5File::open(file);
  for (const char* g : kGroups) {
    if (!f.exists(g) || !f.exists(std::string(g) + "/step")) continue;
    Series s;
    for (const std::string& c : f.children(g)) s[c] = f.read_series(std::string(g) + "/" + c);
    // A flush caught half-way can leave columns of unequal length: keep the rows every column has.
    size_t rows = s["step"].size();
    for (const auto& [k, v] : s) rows = std::min(rows, v.size());
    for (auto& [k, v] : s) v.resize(rows);
    out[g] = std::move(s);
  }
  return out;
}

std::optional<CheckpointInfo> latest_checkpoint(const fs::path& root) {
  std::ifstream in(root / "latest");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty() || !fs::exists(root / name / "COMPLETE"))
    return std::nullopt;
  CheckpointInfo c{name, 0, age_of(root / name / "COMPLETE")};
  if (name.rfind("step-", 0) == 0) c.step = std::strtoll(name.c_str() + 5, nullptr, 10);
  return c;
}

}  // namespace

bool RunData::is_unlearn() const {
  return groups.count("epoch") || summary.has_value();
}

const Series* RunData::group(const std::string& name) const {
  const auto it = groups.find(name);
  return it == groups.end() ? nullptr : &it->second;
}

const std::vector<double>& RunData::column(const std::string& g, const std::string& name) const {
  static const std::vector<double> kEmpty;
  const Series* s = group(g);
  if (!s) return kEmpty;
  const auto it = s->find(name);
  return it == s->end() ? kEmpty : it->second;
}

RunData load_run(const fs::path& given) {
  fs::path dir = given.lexically_normal();  // "results/run-exp0/" names the folder run-exp0
  if (dir.filename().empty()) dir = dir.parent_path();
  const fs::path cfg = dir / "config.resolved.yaml";
  LETHE_CHECK_INPUT(fs::is_directory(dir), "{}: no such run folder", dir.string());
  LETHE_CHECK_INPUT(fs::exists(cfg),
                    "{}: not a lethe run folder (no config.resolved.yaml); give <run.output_dir>/<run.name>",
                    dir.string());
  RunData r;
  r.dir = dir;
  r.config = load_config(cfg, {});
  const fs::path metrics = dir / "metrics.h5";
  if (fs::exists(metrics)) {
    // The writer holds the file for a moment at each flush (HDF5's lock): retry, then report.
    for (int attempt = 0;; ++attempt) {
      try {
        r.groups = read_series(metrics);
        break;
      } catch (const std::exception& e) {
        LETHE_CHECK_INPUT(attempt < 25, "{}: cannot read ({})", metrics.string(), e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    r.metrics_age_seconds = age_of(metrics);
  }
  if (fs::exists(dir / "unlearn.json")) {
    nlohmann::json j =
        nlohmann::json::parse(read_text_file(dir / "unlearn.json", "a lethe unlearn.json"), nullptr, false);
    const bool ok = !j.is_discarded() && j.is_object() && j.contains("epochs") && j["epochs"].is_number() &&
                    j.contains("stop_reason") && j["stop_reason"].is_string() &&
                    (!j.contains("utility") || j["utility"].is_object());
    LETHE_CHECK_INPUT(ok,
                      "{}: not a lethe unlearn.json (expected an object with a number 'epochs', a string "
                      "'stop_reason' and optionally a 'utility' object)",
                      (dir / "unlearn.json").string());
    r.summary = std::move(j);
  }
  r.checkpoint = latest_checkpoint(dir / "checkpoints");
  return r;
}

Stat stat(const std::vector<double>& values) {
  double sum = 0;
  int n = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++n;
  if (n == 0) return {std::nan(""), std::nan(""), 0};
  const double mean = sum / n;
  if (n < 2) return {mean, std::nan(""), n};
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - mean) * (v - mean);
  return {mean, std::sqrt(ss / (n - 1)), n};
}

}  // namespace lethe::report
