#include "utility/suite.h"

#include <algorithm>
#include <array>
#include <set>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace lethe::utility {
namespace fs = std::filesystem;
namespace {

constexpr std::array<std::pair<TaskFormat, std::string_view>, 15> kFormats = {{
    {TaskFormat::kPiqa, "piqa"},
    {TaskFormat::kWinogrande, "winogrande"},
    {TaskFormat::kWinograndePartial, "winogrande_partial"},
    {TaskFormat::kMathqa, "mathqa"},
    {TaskFormat::kHellaswagTxt, "hellaswag_txt"},
    {TaskFormat::kHellaswag, "hellaswag"},
    {TaskFormat::kArc, "arc"},
    {TaskFormat::kArcMosaic, "arc_mosaic"},
    {TaskFormat::kCopa, "copa"},
    {TaskFormat::kCopaMosaic, "copa_mosaic"},
    {TaskFormat::kMosaic, "mosaic"},
    {TaskFormat::kPubmedqa, "pubmedqa"},
    {TaskFormat::kLambada, "lambada"},
    {TaskFormat::kDialogue, "dialogue"},
    {TaskFormat::kText, "text"},
}};

std::string format_names() {
  std::vector<std::string_view> names;
  for (const auto& [f, n] : kFormats) names.push_back(n);
  return fmt::format("{}", fmt::join(names, ", "));
}

// The scalar at `key` of `node` as T, or `fallback` when absent; InputError naming where and what.
template <class T>
T get(const YAML::Node& node, const char* key, T fallback, const std::string& where) {
  const YAML::Node v = node[key];
  if (!v) return fallback;
  LETHE_CHECK_INPUT(v.IsScalar(), "{}: '{}' must be a scalar", where, key);
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    throw_input("{}: '{}' = '{}' is not {}", where, key, v.Scalar(),
                std::is_integral_v<T> ? "an integer" : "a string");
  }
}

void check_keys(const YAML::Node& node, std::initializer_list<std::string_view> allowed,
                const std::string& where) {
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    LETHE_CHECK_INPUT(std::find(allowed.begin(), allowed.end(), key) != allowed.end(),
                      "{}: unknown key '{}' (expected one of: {})", where, key, fmt::join(allowed, ", "));
  }
}

}  // namespace

TaskKind kind_of(TaskFormat f) {
  switch (f) {
    case TaskFormat::kLambada:
      return TaskKind::kLambada;
    case TaskFormat::kDialogue:
      return TaskKind::kDialogue;
    case TaskFormat::kText:
      return TaskKind::kPerplexity;
    default:
      return TaskKind::kChoice;
  }
}

const char* headline_metric(TaskKind k) {
  return k == TaskKind::kDialogue ? "f1" : k == TaskKind::kPerplexity ? "ppl" : "acc";
}

const char* kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::kChoice:
      return "choice";
    case TaskKind::kLambada:
      return "lambada";
    case TaskKind::kDialogue:
      return "dialogue";
    case TaskKind::kPerplexity:
      return "perplexity";
  }
  return "?";
}

const char* group_name(Group g) {
  return g == Group::kCls ? "cls" : g == Group::kDia ? "dia" : "none";
}

Suite load_suite(const fs::path& file) {
  LETHE_CHECK_INPUT(fs::is_regular_file(file), "utility suite '{}' does not exist (see configs/utility/)",
                    file.string());
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    throw_input("{}: not valid YAML: {}", file.string(), e.what());
  }
  const std::string where = file.string();
  LETHE_CHECK_INPUT(root.IsMap(), "{}: expected a mapping with a 'tasks' list", where);
  check_keys(root, {"window", "encoding", "max_new_tokens", "ppl_window", "batch_size", "data_dir", "tasks"},
             where);
  Suite s;
  s.source = file;
  s.window = get<int64_t>(root, "window", s.window, where);
  s.max_new_tokens = get<int64_t>(root, "max_new_tokens", s.max_new_tokens, where);
  s.ppl_window = get<int64_t>(root, "ppl_window", s.ppl_window, where);
  s.batch_size = get<int64_t>(root, "batch_size", s.batch_size, where);
  LETHE_CHECK_INPUT(s.window >= 2, "{}: window must be >= 2", where);
  LETHE_CHECK_INPUT(s.ppl_window >= 2, "{}: ppl_window must be >= 2", where);
  LETHE_CHECK_INPUT(s.max_new_tokens >= 1, "{}: max_new_tokens must be >= 1", where);
  LETHE_CHECK_INPUT(s.batch_size >= 1, "{}: batch_size must be >= 1", where);
  const auto encoding = get<std::string>(root, "encoding", "separate", where);
  LETHE_CHECK_INPUT(encoding == "separate" || encoding == "joint",
                    "{}: encoding '{}' must be separate (ICU) or joint (lm-eval)", where, encoding);
  s.encoding = encoding == "joint" ? Encoding::kJoint : Encoding::kSeparate;
  const fs::path data_dir = get<std::string>(root, "data_dir", "", where);

  const YAML::Node tasks = root["tasks"];
  LETHE_CHECK_INPUT(tasks && tasks.IsSequence() && tasks.size() > 0, "{}: 'tasks' must be a non-empty list",
                    where);
  std::set<std::string> names;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const YAML::Node t = tasks[i];
    std::string at = fmt::format("{}: tasks[{}]", where, i);
    LETHE_CHECK_INPUT(t.IsMap(), "{}: expected a mapping", at);
    check_keys(
        t, {"name", "format", "file", "labels", "prompt", "choice", "group", "column", "choices", "limit"},
        at);
    TaskSpec spec;
    spec.name = get<std::string>(t, "name", "", at);
    LETHE_CHECK_INPUT(!spec.name.empty(), "{}: 'name' is required", at);
    at += fmt::format(" ({})", spec.name);
    LETHE_CHECK_INPUT(names.insert(spec.name).second, "{}: task name used twice", at);
    const auto format = get<std::string>(t, "format", "", at);
    const auto* f =
        std::find_if(kFormats.begin(), kFormats.end(), [&](const auto& p) { return p.second == format; });
    LETHE_CHECK_INPUT(f != kFormats.end(), "{}: format '{}' must be one of: {}", at, format, format_names());
    spec.format = f->first;
    const auto resolve = [&](const std::string& p) {
      return p.empty() || fs::path(p).is_absolute() ? fs::path(p) : data_dir / p;
    };
    spec.file = resolve(get<std::string>(t, "file", "", at));
    LETHE_CHECK_INPUT(!spec.file.empty(), "{}: 'file' is required", at);
    spec.labels = resolve(get<std::string>(t, "labels", "", at));
    spec.prompt = get<std::string>(t, "prompt", spec.prompt, at);
    spec.choice = get<std::string>(t, "choice", spec.choice, at);
    LETHE_CHECK_INPUT(spec.prompt.find("{context}") != std::string::npos,
                      "{}: prompt '{}' must contain {{context}}", at, spec.prompt);
    LETHE_CHECK_INPUT(spec.choice.find("{choice}") != std::string::npos,
                      "{}: choice '{}' must contain {{choice}}", at, spec.choice);
    const auto group = get<std::string>(t, "group", "none", at);
    LETHE_CHECK_INPUT(group == "cls" || group == "dia" || group == "none",
                      "{}: group '{}' must be cls, dia or none", at, group);
    spec.group = group == "cls" ? Group::kCls : group == "dia" ? Group::kDia : Group::kNone;
    const TaskKind kind = kind_of(spec.format);
    LETHE_CHECK_INPUT(spec.group != Group::kCls || kind == TaskKind::kChoice || kind == TaskKind::kLambada,
                      "{}: group cls averages accuracies; a {} task has none", at, kind_name(kind));
    LETHE_CHECK_INPUT(spec.group != Group::kDia || kind == TaskKind::kDialogue,
                      "{}: group dia averages dialogue F1; a {} task has none", at, kind_name(kind));
    spec.column = get<std::string>(t, "column", "", at);
    spec.choices = get<int64_t>(t, "choices", 0, at);
    spec.limit = get<int64_t>(t, "limit", 0, at);
    LETHE_CHECK_INPUT(spec.choices == 0 || spec.choices >= 2, "{}: choices must be 0 (as given) or >= 2", at);
    LETHE_CHECK_INPUT(spec.limit >= 0, "{}: limit must be >= 0", at);
    LETHE_CHECK_INPUT(spec.labels.empty() || spec.format == TaskFormat::kPiqa,
                      "{}: 'labels' is for format piqa", at);
    s.tasks.push_back(std::move(spec));
  }
  return s;
}

std::vector<TaskSpec> select_tasks(const Suite& suite, const std::vector<std::string>& names, int64_t limit) {
  std::vector<TaskSpec> out;
  for (const std::string& n : names) {
    const bool known =
        std::any_of(suite.tasks.begin(), suite.tasks.end(), [&](const TaskSpec& t) { return t.name == n; });
    if (!known) {
      std::vector<std::string> all;
      for (const TaskSpec& t : suite.tasks) all.push_back(t.name);
      throw_input("utility task '{}' is not in {} (it has: {})", n, suite.source.string(),
                  fmt::join(all, ", "));
    }
  }
  for (const TaskSpec& t : suite.tasks) {
    if (!names.empty() && std::find(names.begin(), names.end(), t.name) == names.end()) continue;
    out.push_back(t);
    if (limit > 0) out.back().limit = out.back().limit > 0 ? std::min(out.back().limit, limit) : limit;
  }
  return out;
}

}  // namespace lethe::utility
