// One utility task, ready to run: its examples tokenised and cut into batches that do not depend on how
// many ranks share the work. Single-device code: a driver (train/utility_eval.h) decides which batches a
// rank runs, sums the value buffers across ranks and calls finish(), so every rank count gives the same
// numbers bit for bit.
//
// What each kind computes (spec icu.md §9):
//   choice     sum of each option's continuation log-probs; acc = argmax is gold (ICU), acc_norm = argmax of
//              logprob / code points of the option (lm-eval)
//   lambada    teacher-forced greedy tokens of " " + last word; correct = all equal, or the decoded strings
//              equal after SQuAD normalisation; F1; loss = mean -logprob, ppl = exp(loss)
//   dialogue   greedy generation of max_new_tokens from the "User 1: ... User k:" history, cut at "\nUser ",
//              SQuAD F1 against the normalised last turn
//   perplexity the texts joined by blank lines, tokenised once, non-overlapping windows; ppl = exp(mean of
//              the windows' mean next-token loss)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/causal_lm.h"
#include "text/tokenizer.h"
#include "utility/loglik.h"
#include "utility/readers.h"
#include "utility/suite.h"

namespace lethe::utility {

struct TaskResult {
  std::string name;
  TaskKind kind = TaskKind::kChoice;
  Group group = Group::kNone;
  std::string column;
  int64_t n = 0;                                        // examples (windows for perplexity)
  std::string headline;                                 // acc | f1 | ppl: the metric summaries use
  std::vector<std::pair<std::string, double>> metrics;  // in report order, stderr after its metric
  std::vector<std::pair<std::string, std::vector<double>>> columns;  // per-example table for metrics.h5
  std::vector<std::pair<std::string, std::string>> strings;          // per-example texts as JSON lists
  double seconds = 0;

  double metric(const std::string& key) const;  // NaN when absent
};

// InputError naming the suite file when its windows do not fit a model with this many positions.
void check_fits(const Suite& suite, int64_t max_positions);

class TaskRunner {
 public:
  // Tokenises every example; InputError naming the task, file and line for an example that cannot be
  // scored (empty context or continuation, a continuation as long as the window), or naming the suite when
  // its windows exceed the model's positions or the tokenizer has ids the model lacks. pad = EOS = the
  // tokenizer's (ICU). `suite` and `tokenizer` must outlive the runner.
  TaskRunner(const Suite& suite, TaskSpec spec, TaskData data, const text::Tokenizer& tokenizer,
             const model::ModelConfig& arch);

  const TaskSpec& spec() const { return spec_; }
  int64_t batches() const { return static_cast<int64_t>(batches_.size()); }
  int64_t value_count() const { return static_cast<int64_t>(per_unit_ * units_); }

  // Runs batch b and writes its slots of `values` (size value_count(), zeros elsewhere).
  void run(model::CausalLm& model, int64_t b, std::vector<double>& values) const;

  // Metrics and the per-example table from the complete value buffer.
  TaskResult finish(const std::vector<double>& values) const;

 private:
  std::pair<std::vector<int64_t>, std::vector<int64_t>> encode_pair(std::string context,
                                                                    std::string continuation,
                                                                    int64_t line) const;
  void cut_batches(const std::vector<int64_t>& lengths);
  // Decoded text of model-chosen ids; ids beyond the tokenizer's vocabulary (a padded embedding) are dropped.
  std::string decode(const std::vector<int64_t>& ids) const;

  const Suite& suite_;
  TaskSpec spec_;
  TaskData data_;
  const text::Tokenizer& tok_;
  int64_t eos_;
  std::vector<std::vector<Request>> requests_;  // choice / lambada: per example, per option
  std::vector<std::vector<int64_t>> prompts_;   // dialogue: prompt tokens per example
  std::vector<std::string> targets_;            // dialogue: decoded normalised last turn per example
  std::vector<std::vector<int64_t>> windows_;   // perplexity
  std::vector<int64_t> offsets_;                // choice: first request slot of each example
  std::vector<std::vector<int64_t>> batches_;   // example (or window) indices per batch
  int64_t units_ = 0, per_unit_ = 0;            // value slots: units_ x per_unit_
};

}  // namespace lethe::utility
