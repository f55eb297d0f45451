// The progress line long loops print (core/progress.h): counts, percentage, rate, elapsed time and ETA.
#include "core/progress.h"

#include <gtest/gtest.h>

namespace lethe {
namespace {

TEST(Progress, HoursMinutesSeconds) {
  EXPECT_EQ(hms(0), "0:00");
  EXPECT_EQ(hms(59.4), "0:59");
  EXPECT_EQ(hms(59.6), "1:00");
  EXPECT_EQ(hms(3599), "59:59");
  EXPECT_EQ(hms(3600), "1:00:00");
  EXPECT_EQ(hms(3 * 3600 + 62), "3:01:02");
}

TEST(Progress, LineShowsRateAndEta) {
  // 3200 of 15000 rows in 64 s: 50 rows/s, 11800 rows left = 236 s.
  EXPECT_EQ(progress_line("prep: embedding rows", 3200, 15000, "rows", 64.0),
            "prep: embedding rows 3200/15000 (21 %) | 50.0 rows/s | elapsed 1:04 | eta 3:56");
  EXPECT_EQ(progress_line("x", 10, 10, "texts", 2.0), "x 10/10 (100 %) | 5.0 texts/s | elapsed 0:02 | done");
  EXPECT_EQ(progress_line("x", 0, 10, "texts", 0.0), "x 0/10 (0 %) | 0.0 texts/s | elapsed 0:00 | eta ?");
}

}  // namespace
}  // namespace lethe
