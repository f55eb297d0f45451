// Learning-rate schedules as pure functions of the optimizer step, so a resumed run continues on the same
// curve with nothing but the step count restored.
#pragma once

#include <cstdint>

namespace lethe::zero {

enum class Schedule { kConstant, kLinear, kCosine };

struct ScheduleOptions {
  Schedule kind = Schedule::kConstant;
  double lr = 1e-4;
  int64_t warmup_steps = 0;  // linear ramp from 0 to lr over the first warmup_steps (all kinds)
  int64_t total_steps = 1;   // decay ends here (linear / cosine)
  double min_lr_ratio = 0;   // decay floor as a fraction of lr
};

// The learning rate of optimizer step `step` (0-based: the first update uses lr_at(o, 0)).
//   warm-up:  lr · (step + 1) / warmup_steps                 for step < warmup_steps
//   constant: lr
//   linear:   lr · (min + (1 - min) · (1 - p)),  p = (step - warmup) / (total - warmup) clamped to [0, 1]
//   cosine:   lr · (min + (1 - min) · (1 + cos(π p)) / 2)
double lr_at(const ScheduleOptions& o, int64_t step);

}  // namespace lethe::zero
