// A downstream utility suite: the zero-shot tasks that show whether an unlearned model stays useful (spec
// icu.md §9). A suite is its own YAML file (configs/utility/*.yaml) so that one run config can point at ICU's
// suite or at an lm-eval-compatible one; the run config picks the file and a subset of its tasks.
//
// Each task entry names a file, the reader for its format, and the prompt and choice templates:
// clang-format off
//   - name: piqa
//     format: piqa             # reader; it also fixes the kind (choice, lambada, dialogue, perplexity)
//     file: downstream/piqa_valid_first500.jsonl
//     labels: downstream/piqa_valid-labels_first500.lst   # piqa only: one 0/1 per line
//     prompt: "{context}"      # the context as the model sees it
//     choice: " {choice}"      # each answer option as the continuation
//     group: cls               # cls: counts towards "Cls Avg"; dia: "Dia Avg"; none
//     column: Pile             # perplexity tasks: the summary column they fill
//     choices: 4               # optional: ICU's ARC rule (pad with "just for work" / cut to 4)
//     limit: 0                 # optional: the first N examples (0 = all)
// clang-format on
// Relative file paths resolve against the suite's data_dir, itself relative to the current directory (the
// repository root, like every path in lethe's configs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lethe::utility {

enum class TaskKind { kChoice, kLambada, kDialogue, kPerplexity };

enum class TaskFormat {
  kPiqa,               // jsonl goal/sol1/sol2 (+ label or a labels file)
  kWinogrande,         // jsonl sentence/option1/option2/answer; ICU split: context left of " _"
  kWinograndePartial,  // same file, lm-eval's partial scoring: context = left part + option
  kMathqa,             // jsonl Problem/options/correct ("a ) 24 , b ) 120 , ...")
  kHellaswagTxt,       // six lines per item: "label: ctx", gold, four endings (the shipped lm-eval view)
  kHellaswag,          // HF jsonl ctx/endings/label
  kArc,                // HF jsonl question/choices{text,label}/answerKey
  kArcMosaic,          // jsonl query ("Question: ...")/choices/gold
  kCopa,               // HF jsonl premise/choice1/choice2/question/label
  kCopaMosaic,         // jsonl query ("..., therefore")/choices/gold; ICU's premise and choices restored
  kMosaic,             // jsonl query/choices/gold as given (BoolQ)
  kPubmedqa,           // csv question/abstract/final_decision
  kLambada,            // csv text: context = all but the last word, target = " " + last word
  kDialogue,           // JSON {"text": {"0": [turn, ...], ...}} (pandas to_json column layout)
  kText,               // csv text: perplexity
};

enum class Group { kNone, kCls, kDia };

// How a context and a continuation become tokens.
enum class Encoding {
  kSeparate,  // ICU: each tokenised alone (the first `window` tokens kept), then concatenated
  kJoint,     // lm-eval: trailing spaces of the context move to the continuation; the continuation's tokens
              // are those of encode(context + continuation) after encode(context)
};

struct TaskSpec {
  std::string name;
  TaskFormat format = TaskFormat::kMosaic;
  std::filesystem::path file, labels;
  std::string prompt = "{context}", choice = " {choice}";
  Group group = Group::kNone;
  std::string column;
  int64_t choices = 0;
  int64_t limit = 0;
};

struct Suite {
  std::filesystem::path source;  // the YAML file, for messages
  int64_t window = 512;  // tokens of context + continuation kept from the right; the model reads window-1
  Encoding encoding = Encoding::kSeparate;
  int64_t max_new_tokens = 32;  // dialogue generation
  int64_t ppl_window = 512;     // perplexity: non-overlapping windows of this many tokens
  int64_t batch_size = 32;      // examples (choice items, dialogues, windows) per forward batch
  std::vector<TaskSpec> tasks;
};

TaskKind kind_of(TaskFormat f);
// The metric summaries and series report for a kind: acc (choice, lambada), f1 (dialogue), ppl (perplexity).
const char* headline_metric(TaskKind k);
const char* kind_name(TaskKind k);
const char* group_name(Group g);

// Reads and validates a suite file: InputError naming the file, the task (index and name) and the key.
Suite load_suite(const std::filesystem::path& file);

// The named tasks in suite order (all when `names` is empty); InputError listing the suite's names for an
// unknown one. limit > 0 caps every selected task's limit.
std::vector<TaskSpec> select_tasks(const Suite& suite, const std::vector<std::string>& names, int64_t limit);

}  // namespace lethe::utility
