// A run's history across pre-emptions and requeues, in <run>/metrics.h5 beside the series (rank 0 only):
//   /launches  one row per start, fresh or resumed; index = launch number (0 = the first start). Columns:
//              resumed_from_step (-1 = fresh), world_size, unix_time, and the Slurm identity of the start
//              (slurm_job_id, slurm_restart_count, slurm_array_job_id, slurm_array_task_id; -1 outside
//              Slurm). Slurm increments SLURM_RESTART_COUNT on every requeue.
//   /stops     one row per stop signal acted on; index = the step of the checkpoint it saved. Columns:
//              signal, unix_time.
// Unlike the step series these rows are never dropped on resume: they are what happened, not what the model
// saw. A fresh start empties both.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

namespace lethe::io {

// Appends this start to /launches. resumed_from_step: nullopt for a fresh start.
void record_launch(const std::filesystem::path& metrics_file, std::optional<int64_t> resumed_from_step,
                   int world_size);

// Appends a stop to /stops.
void record_stop(const std::filesystem::path& metrics_file, int64_t step, int signal);

}  // namespace lethe::io
