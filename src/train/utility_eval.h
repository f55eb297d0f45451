// The downstream utility suite over a communicator: each rank runs batches b ≡ rank (mod N) of every task,
// the per-example value buffers are summed across ranks (every slot is written by exactly one rank), and
// every rank finishes the same results. Batches do not depend on N, so N = 1, 2, 3 give identical numbers.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "model/gpt_neo.h"
#include "text/bpe.h"
#include "utility/suite.h"
#include "utility/tasks.h"

namespace lethe::train {

struct UtilityReport {
  std::vector<utility::TaskResult> results;
  std::vector<std::pair<std::string, std::string>> failed;  // task, message (keep_going only)
  double seconds = 0;
};

// Reads every task first (all errors before any model work). keep_going: a task that cannot be read or
// scored is reported in `failed` and the others still run; otherwise its InputError propagates.
UtilityReport run_utility(model::GptNeo& model, const text::Gpt2Tokenizer& tokenizer,
                          const utility::Suite& suite, const std::vector<utility::TaskSpec>& tasks,
                          bool keep_going, comm::Communicator& comm);

// {"tasks": {name: {kind, n, metrics..., seconds}}, "summary": {"Cls Avg", "Dia Avg", <ppl columns>},
// "failed"}.
nlohmann::json utility_json(const UtilityReport& r);

// The paper columns: "Cls Avg" (mean acc of group cls), "Dia Avg" (mean F1 of group dia), and each perplexity
// task's column; only those whose tasks ran.
std::vector<std::pair<std::string, double>> utility_summary(const UtilityReport& r);

// Rank 0: per-example tables under /<group>/<task> in metrics.h5.
void write_utility_tables(const std::filesystem::path& metrics_file, const std::string& group,
                          const UtilityReport& r);

// One line per task for the log.
std::string utility_line(const utility::TaskResult& t);

}  // namespace lethe::train
