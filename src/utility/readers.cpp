#include "utility/readers.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/csv.h"
#include "text/regex.h"
#include "utility/normalize.h"

namespace lethe::utility {
namespace fs = std::filesystem;
using nlohmann::json;
namespace {

// "task 'piqa': FILE:LINE" — the prefix of every message about one example.
struct Where {
  const TaskSpec& spec;
  std::string at(int64_t line, const char* unit = "line") const {
    return fmt::format("task '{}': {} {} {}", spec.name, spec.file.string(), unit, line);
  }
};

std::string read_text(const fs::path& p, const std::string& task) {
  std::ifstream in(p, std::ios::binary);
  LETHE_CHECK_INPUT(in.good(), "task '{}': cannot read '{}' (set the task's file, or data_dir in the suite)",
                    task, p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Non-blank lines with their 1-based numbers.
std::vector<std::pair<int64_t, std::string>> read_lines(const fs::path& p, const std::string& task) {
  std::istringstream in(read_text(p, task));
  std::vector<std::pair<int64_t, std::string>> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.emplace_back(n, line);
  }
  return out;
}

std::vector<std::pair<int64_t, json>> read_jsonl(const TaskSpec& spec) {
  std::vector<std::pair<int64_t, json>> out;
  for (auto& [n, line] : read_lines(spec.file, spec.name)) {
    json j = json::parse(line, nullptr, false);
    LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: not a JSON object", Where{spec}.at(n));
    out.emplace_back(n, std::move(j));
  }
  return out;
}

std::string str_field(const json& j, const char* key, const std::string& at) {
  LETHE_CHECK_INPUT(j.contains(key) && j[key].is_string(), "{}: field '{}' missing or not a string", at, key);
  return j[key].get<std::string>();
}

std::vector<std::string> str_list(const json& j, const char* key, const std::string& at) {
  LETHE_CHECK_INPUT(j.contains(key) && j[key].is_array() && !j[key].empty(),
                    "{}: field '{}' missing or not a non-empty list of strings", at, key);
  std::vector<std::string> out;
  for (const json& v : j[key]) {
    LETHE_CHECK_INPUT(v.is_string(), "{}: field '{}' must hold strings only", at, key);
    out.push_back(v.get<std::string>());
  }
  return out;
}

// An integer label given as a number or a digit string ("1" in WinoGrande).
int64_t int_field(const json& j, const char* key, const std::string& at) {
  LETHE_CHECK_INPUT(j.contains(key), "{}: field '{}' missing", at, key);
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    int64_t x = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (ec == std::errc() && p == s.data() + s.size()) return x;
  }
  throw_input("{}: field '{}' = {} is not an integer label", at, key, v.dump());
}

std::string rstrip(std::string_view s, std::string_view chars) {
  const size_t e = s.find_last_not_of(chars);
  return e == std::string_view::npos ? std::string() : std::string(s.substr(0, e + 1));
}

ChoiceItem make_item(int64_t line, std::string context, std::vector<std::string> options, int64_t gold,
                     const std::string& at) {
  LETHE_CHECK_INPUT(gold >= 0 && gold < static_cast<int64_t>(options.size()),
                    "{}: label {} out of range (the example has {} options, labels 0..{})", at, gold,
                    options.size(), options.size() - 1);
  ChoiceItem it;
  it.line = line;
  it.contexts = {std::move(context)};
  for (const auto& o : options) it.norm_chars.push_back(code_points(o));
  it.literal.assign(options.size(), 0);
  it.options = std::move(options);
  it.gold = gold;
  return it;
}

// ICU's ARC rule (Datasets_valid.py): fewer than K options get one literal "just for work" filler; more than
// K keep the last K when the answer is beyond the first K (answer "E"), else the first K.
void fit_choices(ChoiceItem& it, int64_t k) {
  const auto n = static_cast<int64_t>(it.options.size());
  if (k <= 0 || n == k) return;
  if (n < k) {
    it.options.emplace_back("just for work");
    it.literal.push_back(1);
    it.norm_chars.push_back(code_points(it.options.back()));
    return;
  }
  const int64_t first = it.gold >= k ? std::min(it.gold, n - k) : 0;  // a window that keeps the answer
  auto cut = [&](auto& v) { v = std::decay_t<decltype(v)>(v.begin() + first, v.begin() + first + k); };
  cut(it.options);
  cut(it.literal);
  cut(it.norm_chars);
  it.gold -= first;
}

std::vector<ChoiceItem> read_choice_jsonl(const TaskSpec& spec) {
  static const text::Regex mathqa_option(R"([abcd] \) .*?, |e \) .*?$)");
  const Where w{spec};
  std::vector<int64_t> labels;
  if (spec.format == TaskFormat::kPiqa && !spec.labels.empty()) {
    for (auto& [n, line] : read_lines(spec.labels, spec.name)) {
      const std::string s = strip_whitespace(line);
      LETHE_CHECK_INPUT(s == "0" || s == "1", "task '{}': {} line {}: label '{}' must be 0 or 1", spec.name,
                        spec.labels.string(), n, s);
      labels.push_back(s == "1");
    }
  }
  std::vector<ChoiceItem> items;
  const auto records = read_jsonl(spec);
  if (!labels.empty())
    LETHE_CHECK_INPUT(labels.size() >= records.size(),
                      "task '{}': {} has {} labels for the {} examples of {}", spec.name,
                      spec.labels.string(), labels.size(), records.size(), spec.file.string());
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& [n, j] = records[i];
    const std::string at = w.at(n);
    switch (spec.format) {
      case TaskFormat::kPiqa: {
        const int64_t gold = labels.empty() ? int_field(j, "label", at) : labels[i];
        items.push_back(make_item(n, str_field(j, "goal", at),
                                  {str_field(j, "sol1", at), str_field(j, "sol2", at)}, gold, at));
        break;
      }
      case TaskFormat::kWinogrande:
      case TaskFormat::kWinograndePartial: {
        const std::string s = str_field(j, "sentence", at);
        const std::vector<std::string> opt = {str_field(j, "option1", at), str_field(j, "option2", at)};
        const int64_t gold = int_field(j, "answer", at) - 1;
        if (spec.format == TaskFormat::kWinogrande) {
          const size_t cut = s.find(" _");
          LETHE_CHECK_INPUT(cut != std::string::npos && s.find(" _", cut + 1) == std::string::npos,
                            "{}: sentence must contain \" _\" exactly once", at);
          const std::string rest = s.substr(cut + 2);
          items.push_back(make_item(n, s.substr(0, cut), {opt[0] + rest, opt[1] + rest}, gold, at));
        } else {  // lm-eval: one context per option, the shared continuation after the blank
          const size_t cut = s.find('_');
          LETHE_CHECK_INPUT(cut != std::string::npos, "{}: sentence has no '_' blank", at);
          const std::string rest = strip_whitespace(s.substr(cut + 1));
          ChoiceItem it = make_item(n, "", {rest, rest}, gold, at);
          it.contexts = {s.substr(0, cut) + opt[0], s.substr(0, cut) + opt[1]};
          it.norm_chars = {code_points(it.contexts[0]), code_points(it.contexts[1])};
          items.push_back(std::move(it));
        }
        break;
      }
      case TaskFormat::kMathqa: {
        std::vector<std::string> opts;
        for (const std::string& m : mathqa_option.find_all(str_field(j, "options", at)))
          opts.push_back(rstrip(std::string_view(m).substr(4), " ,"));  // c[4:].rstrip(" ,")
        LETHE_CHECK_INPUT(!opts.empty(), "{}: 'options' has no 'a ) ...' options", at);
        const std::string c = str_field(j, "correct", at);
        LETHE_CHECK_INPUT(c.size() == 1 && c[0] >= 'a' && c[0] <= 'e', "{}: 'correct' = '{}' must be a..e",
                          at, c);
        items.push_back(make_item(n, str_field(j, "Problem", at), opts, c[0] - 'a', at));
        break;
      }
      case TaskFormat::kHellaswag:
        items.push_back(
            make_item(n, str_field(j, "ctx", at), str_list(j, "endings", at), int_field(j, "label", at), at));
        break;
      case TaskFormat::kArc: {
        LETHE_CHECK_INPUT(j.contains("choices") && j["choices"].is_object(),
                          "{}: field 'choices' must be an object with 'text' and 'label' lists", at);
        const std::vector<std::string> text = str_list(j["choices"], "text", at),
                                       label = str_list(j["choices"], "label", at);
        LETHE_CHECK_INPUT(text.size() == label.size(), "{}: choices.text and choices.label differ in length",
                          at);
        const std::string key = str_field(j, "answerKey", at);
        const auto g = std::find(label.begin(), label.end(), key);
        LETHE_CHECK_INPUT(g != label.end(), "{}: answerKey '{}' is not among choices.label", at, key);
        items.push_back(make_item(n, str_field(j, "question", at), text, g - label.begin(), at));
        fit_choices(items.back(), spec.choices);
        break;
      }
      case TaskFormat::kArcMosaic: {
        std::string q = str_field(j, "query", at);
        if (q.rfind("Question: ", 0) == 0) q.erase(0, 10);  // the raw question, as HF's ai2_arc has it
        items.push_back(make_item(n, q, str_list(j, "choices", at), int_field(j, "gold", at), at));
        fit_choices(items.back(), spec.choices);
        break;
      }
      case TaskFormat::kCopa:
        items.push_back(make_item(n, str_field(j, "premise", at),
                                  {str_field(j, "choice1", at), str_field(j, "choice2", at)},
                                  int_field(j, "label", at), at));
        break;
      case TaskFormat::kCopaMosaic: {
        // The converted file joins premise and connective ("It rained, therefore") and lower-cases each
        // option's first letter; ICU scores the raw premise (ending in ".") and the options as written.
        std::string q = str_field(j, "query", at);
        bool restored = false;
        for (const char* tail : {", therefore", ", because"}) {
          const std::string t(tail);
          if (q.size() > t.size() && q.compare(q.size() - t.size(), t.size(), t) == 0) {
            q = q.substr(0, q.size() - t.size()) + ".";
            restored = true;
            break;
          }
        }
        LETHE_CHECK_INPUT(restored, "{}: query must end with \", therefore\" or \", because\"", at);
        std::vector<std::string> opts = str_list(j, "choices", at);
        for (auto& o : opts)
          if (!o.empty() && o[0] >= 'a' && o[0] <= 'z') o[0] = static_cast<char>(o[0] - 'a' + 'A');
        items.push_back(make_item(n, q, opts, int_field(j, "gold", at), at));
        break;
      }
      case TaskFormat::kMosaic:
        items.push_back(make_item(n, str_field(j, "query", at), str_list(j, "choices", at),
                                  int_field(j, "gold", at), at));
        break;
      default:
        throw std::logic_error("read_choice_jsonl: not a jsonl choice format");
    }
  }
  return items;
}

std::vector<ChoiceItem> read_hellaswag_txt(const TaskSpec& spec) {
  const auto lines = read_lines(spec.file, spec.name);
  LETHE_CHECK_INPUT(
      lines.size() % 6 == 0,
      "task '{}': {} has {} non-blank lines; expected 6 per example (context, label, 4 endings)", spec.name,
      spec.file.string(), lines.size());
  std::vector<ChoiceItem> items;
  for (size_t i = 0; i < lines.size(); i += 6) {
    const std::string at = Where{spec}.at(lines[i].first);
    const std::string g = strip_whitespace(lines[i + 1].second);
    LETHE_CHECK_INPUT(g.size() == 1 && g[0] >= '0' && g[0] <= '9',
                      "{}: line {} = '{}' must be the gold label 0..3", at, lines[i + 1].first, g);
    std::vector<std::string> endings;
    for (size_t k = 2; k < 6; ++k) endings.push_back(lines[i + k].second);
    items.push_back(make_item(lines[i].first, lines[i].second, endings, g[0] - '0', at));
  }
  return items;
}

// CSV rows with every named column non-empty (pandas dropna), with their 1-based data-row numbers.
std::vector<std::pair<int64_t, std::vector<std::string>>> read_csv_rows(
    const TaskSpec& spec, std::initializer_list<const char*> cols) {
  LETHE_CHECK_INPUT(fs::is_regular_file(spec.file),
                    "task '{}': cannot read '{}' (set the task's file, or data_dir in the suite)", spec.name,
                    spec.file.string());
  const text::CsvTable t = text::read_csv(spec.file);
  std::vector<size_t> idx;
  for (const char* c : cols) idx.push_back(t.column(c));
  std::vector<std::pair<int64_t, std::vector<std::string>>> out;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    if (std::any_of(t.rows[r].begin(), t.rows[r].end(), [](const std::string& f) { return f.empty(); }))
      continue;
    std::vector<std::string> v;
    for (size_t i : idx) v.push_back(t.rows[r][i]);
    out.emplace_back(static_cast<int64_t>(r) + 1, std::move(v));
  }
  return out;
}

std::vector<std::vector<std::string>> read_dialogues(const TaskSpec& spec, std::vector<int64_t>& lines) {
  const json j = json::parse(read_text(spec.file, spec.name), nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded(), "task '{}': {} is not valid JSON", spec.name, spec.file.string());
  LETHE_CHECK_INPUT(j.is_object() && j.contains("text") && j["text"].is_object(),
                    "task '{}': {} must be {{\"text\": {{\"0\": [turn, ...], ...}}}} (pandas to_json layout)",
                    spec.name, spec.file.string());
  std::map<int64_t, const json*> rows;  // pandas orders the index numerically
  for (const auto& [k, v] : j["text"].items()) {
    int64_t key = 0;
    const auto [p, ec] = std::from_chars(k.data(), k.data() + k.size(), key);
    LETHE_CHECK_INPUT(ec == std::errc() && p == k.data() + k.size(),
                      "task '{}': {}: key '{}' is not a row index", spec.name, spec.file.string(), k);
    rows[key] = &v;
  }
  std::vector<std::vector<std::string>> out;
  for (const auto& [key, v] : rows) {
    const std::string at = Where{spec}.at(key, "row");
    LETHE_CHECK_INPUT(v->is_array() && v->size() >= 2, "{}: expected a list of at least 2 turns", at);
    std::vector<std::string> turns;
    for (const json& t : *v) {
      LETHE_CHECK_INPUT(t.is_string(), "{}: every turn must be a string", at);
      turns.push_back(t.get<std::string>());
    }
    out.push_back(std::move(turns));
    lines.push_back(key);
  }
  return out;
}

}  // namespace

int64_t code_points(const std::string& text) {
  return std::count_if(text.begin(), text.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

TaskData read_task(const TaskSpec& spec) {
  TaskData d;
  d.kind = kind_of(spec.format);
  switch (spec.format) {
    case TaskFormat::kHellaswagTxt:
      d.items = read_hellaswag_txt(spec);
      break;
    case TaskFormat::kPubmedqa:
      for (auto& [row, v] : read_csv_rows(spec, {"abstract", "question", "final_decision"})) {
        const std::string at = Where{spec}.at(row, "row");
        static const std::vector<std::string> kAnswers = {"yes", "maybe", "no"};
        const auto g = std::find(kAnswers.begin(), kAnswers.end(), v[2]);
        LETHE_CHECK_INPUT(g != kAnswers.end(), "{}: final_decision '{}' must be yes, maybe or no", at, v[2]);
        d.items.push_back(make_item(row, fmt::format("Context: {}\nQuestion: {}\nAnswer:", v[0], v[1]),
                                    kAnswers, g - kAnswers.begin(), at));
      }
      break;
    case TaskFormat::kLambada:
    case TaskFormat::kText:
      for (auto& [row, v] : read_csv_rows(spec, {"text"})) {
        d.texts.push_back(std::move(v[0]));
        d.lines.push_back(row);
      }
      break;
    case TaskFormat::kDialogue:
      d.dialogues = read_dialogues(spec, d.lines);
      break;
    default:
      d.items = read_choice_jsonl(spec);
  }
  const auto limit = static_cast<size_t>(spec.limit);
  if (limit > 0) {
    if (d.items.size() > limit) d.items.resize(limit);
    if (d.texts.size() > limit) d.texts.resize(limit);
    if (d.dialogues.size() > limit) d.dialogues.resize(limit);
    if (d.lines.size() > limit) d.lines.resize(limit);
  }
  const size_t n = d.items.size() + d.texts.size() + d.dialogues.size();
  LETHE_CHECK_INPUT(n > 0, "task '{}': {} has no examples", spec.name, spec.file.string());
  return d;
}

}  // namespace lethe::utility
