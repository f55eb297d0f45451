// `lethe status <run>`: where a running or finished run stands, from its folder alone (report/run_data.h).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "report/run_data.h"

namespace lethe::report {

// Fields (null where the run has not produced them yet):
//   run, kind (unlearn | train), state (finished | stopped | running | starting), detail (one line),
//   step, steps_total (train), epoch and max_epochs (unlearn: validations done after epoch 0),
//   active_pairs, last (the newest validation row for unlearn, the newest step row for train),
//   eta_seconds (unlearn: to max_epochs, thresholds may stop it sooner), last_checkpoint {name, step,
//   age_seconds}, launches, requeues (Slurm's restart count, else resumed launches), slurm_job_id,
//   stops [{step, signal}], metrics_age_seconds.
nlohmann::json run_status(const RunData& run);

// The same as a few aligned lines for a terminal.
std::string format_status(const nlohmann::json& status);

}  // namespace lethe::report
