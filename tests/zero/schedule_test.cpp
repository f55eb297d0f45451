#include "zero/schedule.h"

#include <cmath>

#include <gtest/gtest.h>

namespace lethe::zero {
namespace {

TEST(Schedule, WarmupThenDecay) {
  ScheduleOptions o{Schedule::kCosine, 1.0, /*warmup=*/4, /*total=*/14, /*min=*/0.1};
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.25);
  EXPECT_DOUBLE_EQ(lr_at(o, 3), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 4), 1.0);
  EXPECT_NEAR(lr_at(o, 9), 0.1 + 0.9 * 0.5, 1e-12);  // halfway: cos(π/2) = 0
  EXPECT_DOUBLE_EQ(lr_at(o, 14), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 100), 0.1);
  o.kind = Schedule::kLinear;
  EXPECT_NEAR(lr_at(o, 9), 0.1 + 0.9 * 0.5, 1e-12);
  o.kind = Schedule::kConstant;
  EXPECT_DOUBLE_EQ(lr_at(o, 13), 1.0);
}

}  // namespace
}  // namespace lethe::zero
