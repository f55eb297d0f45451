#include "zero/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace lethe::zero {

double lr_at(const ScheduleOptions& o, int64_t step) {
  if (step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.kind == Schedule::kConstant) return o.lr;
  const double span = static_cast<double>(std::max<int64_t>(o.total_steps - o.warmup_steps, 1));
  const double p = std::clamp(static_cast<double>(step - o.warmup_steps) / span, 0.0, 1.0);
  const double shape = o.kind == Schedule::kLinear ? 1.0 - p : (1.0 + std::cos(std::numbers::pi * p)) / 2.0;
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * shape);
}

}  // namespace lethe::zero
