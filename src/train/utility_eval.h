// The downstream utility suite over a communicator: each rank runs batches b ≡ rank (mod N) of every task,
// the per-example value buffers are summed across ranks (every slot is written by exactly one rank), and
// every rank finishes the same results. Batches do not depend on N, so N = 1, 2, 3 give identical numbers.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "config/config.h"
#include "io/metrics.h"
#include "model/causal_lm.h"
#include "text/tokenizer.h"
#include "utility/suite.h"
#include "utility/tasks.h"

namespace lethe::train {

struct UtilityReport {
  std::vector<utility::TaskResult> results;
  std::vector<std::pair<std::string, std::string>> failed;  // task, message (keep_going only)
  double seconds = 0;                                       // scoring
  double prepare_seconds = 0;  // reading and tokenising the tasks (once per PreparedSuite)
};

// Every selected task read and tokenised, ready to run. Built on every rank; with keep_going, a task that
// failed on any rank is dropped on all of them (the ranks agree before any scoring).
struct PreparedSuite {
  std::vector<std::unique_ptr<utility::TaskRunner>> runners;
  std::vector<std::pair<std::string, std::string>> failed;  // task, message
  double seconds = 0;
};

// All errors come here, before any model work. keep_going: a task that cannot be read or tokenised is put in
// `failed` and the others still run; otherwise its InputError propagates. `suite` and `tokenizer` must
// outlive the result.
PreparedSuite prepare_utility(const text::Tokenizer& tokenizer, const utility::Suite& suite,
                              const std::vector<utility::TaskSpec>& tasks, const model::ModelConfig& arch,
                              bool keep_going, comm::Communicator& comm);

UtilityReport run_utility(model::CausalLm& model, const PreparedSuite& prepared, comm::Communicator& comm);

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

// The suite inside `lethe unlearn` (utility.every / at_start / at_end). Each run is recorded on rank 0 as
// per-example tables under /utility_samples/epoch-NNNN/<task> in metrics.h5, one row of the /utility series
// (step = epoch; "<task>.<acc|f1|ppl>", cls_avg, dia_avg) and an entry of <run>/utility.json
// ({"suite", "epochs": {"<epoch>": utility_json}}). On resume, entries after keep_through are dropped.
class UtilityTracker {
 public:
  // Loads the suite and prepares every selected task (read, tokenised, checked against the model), so a bad
  // suite or file stops the run before training. Collective. `tokenizer` must outlive the tracker.
  UtilityTracker(const UtilitySection& u, const std::filesystem::path& run_dir,
                 std::optional<int64_t> keep_through, const text::Tokenizer& tokenizer,
                 const model::ModelConfig& arch, comm::Communicator& comm);
  bool enabled() const { return enabled_; }
  bool at_start() const { return u_.at_start; }
  bool at_end() const { return u_.at_end; }
  bool due(int64_t epoch) const { return enabled_ && u_.every > 0 && epoch % u_.every == 0; }
  // Runs the suite for `epoch` unless it already ran for it. Collective.
  void run(int64_t epoch, model::CausalLm& model, comm::Communicator& comm);
  // {"<epoch>": summary columns} of every run so far (for unlearn.json).
  nlohmann::json summaries() const;

 private:
  UtilitySection u_;
  bool enabled_ = false, lead_ = false;
  std::filesystem::path run_dir_;
  std::unique_ptr<utility::Suite> suite_;  // stable address: the runners refer to it
  PreparedSuite prepared_;
  std::vector<std::string> series_;
  std::optional<io::MetricsWriter> writer_;
  nlohmann::json history_ = nlohmann::json::object();
  int64_t last_epoch_ = -1;
};

}  // namespace lethe::train
