#include "core/progress.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace lethe {

std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02d}", s / 60, s % 60);
}

std::string progress_line(const std::string& what, int64_t done, int64_t total, const std::string& unit,
                          double seconds) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  const double pct = total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
  const std::string eta = done >= total ? "done"
                          : rate > 0    ? "eta " + hms(static_cast<double>(total - done) / rate)
                                        : "eta ?";
  return fmt::format("{} {}/{} ({:.0f} %) | {:.1f} {}/s | elapsed {} | {}", what, done, total, pct, rate,
                     unit, hms(seconds), eta);
}

Progress::Progress(std::string what, int64_t total, std::string unit, double every_seconds)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      every_(every_seconds),
      start_(Clock::now()),
      last_(start_) {}

void Progress::add(int64_t n) {
  done_ += n;
  const auto now = Clock::now();
  const bool due = std::chrono::duration<double>(now - last_).count() >= every_;
  if (!due && !(done_ >= total_ && logged_)) return;
  last_ = now;
  logged_ = true;
  spdlog::info(
      "{}", progress_line(what_, done_, total_, unit_, std::chrono::duration<double>(now - start_).count()));
}

}  // namespace lethe
