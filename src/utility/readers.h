// Task readers: one per file format of utility/suite.h, each building what ICU's Datasets_valid.py builds
// from that format (spec icu.md §9), so that the scorer only sees contexts, options and gold labels.
//
// Every error names the task, the file and the line (jsonl, text) or row (csv) and what was expected:
// missing or mistyped fields, an empty task, a label out of range, an unparsable option string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "utility/suite.h"

namespace lethe::utility {

struct ChoiceItem {
  int64_t line = 0;                   // 1-based line (jsonl, txt) or data row (csv) of the example
  std::vector<std::string> contexts;  // one shared context, or one per option (lm-eval's partial WinoGrande)
  std::vector<std::string> options;   // answer options before the choice template
  std::vector<uint8_t> literal;       // 1 = the option is used verbatim (ICU's ARC filler "just for work")
  std::vector<int64_t> norm_chars;    // acc_norm divisor per option: code points of lm-eval's choice text
  int64_t gold = 0;
};

struct TaskData {
  TaskKind kind = TaskKind::kChoice;
  std::vector<ChoiceItem> items;                    // choice
  std::vector<std::string> texts;                   // lambada rows, perplexity documents
  std::vector<std::vector<std::string>> dialogues;  // dialogue: the turns, the last one is the target
  std::vector<int64_t> lines;                       // texts / dialogues: source line or row
};

// Reads the task's file (and labels file), keeps the first spec.limit examples (0 = all). CSV rows with an
// empty field are skipped, as pandas' dropna() in the reference does.
TaskData read_task(const TaskSpec& spec);

// Number of Unicode code points of valid UTF-8 text (Python's len()).
int64_t code_points(const std::string& text);

}  // namespace lethe::utility
