// Progress of a long loop on the console, in the shape of the training progress line:
//
//   prep: embedding rows 3200/15000 (21 %) | 54.2 rows/s | elapsed 0:59 | eta 3:38
//
// logged (spdlog info) at most every `every` seconds, and when the total is reached if the loop has run that
// long (a quick loop prints nothing). Rank 0 is the one
// that logs (other ranks run at warn level, cli/distributed.cpp). On a GPU the count is of work queued, so
// the rate can run ahead of the device until the queue fills.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lethe {

// "m:ss", or "h:mm:ss" from an hour up.
std::string hms(double seconds);

// One progress line for `done` of `total` units after `seconds`; the ETA assumes the rate so far.
std::string progress_line(const std::string& what, int64_t done, int64_t total, const std::string& unit,
                          double seconds);

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit, double every_seconds = 10.0);
  // `n` more units done; logs when the interval has passed or the total is reached.
  void add(int64_t n);

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_, unit_;
  int64_t total_ = 0, done_ = 0;
  double every_ = 10.0;
  Clock::time_point start_, last_;
  bool logged_ = false;
};

}  // namespace lethe
