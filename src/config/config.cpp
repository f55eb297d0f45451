// The visitors behind load_config / dump_config / config_keys, all driven by the sections' `visit` lists.
#include "config/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace lethe {
namespace {

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// Sections may list a field without a constraint; this supplies NoCheck so visitors implement one form.
template <class Derived>
struct FieldVisitor {
  template <class T>
  void operator()(std::string_view key, T& field, std::string_view doc) {
    auto& self = static_cast<Derived&>(*this);
    self(key, field, NoCheck{}, doc);
  }
};

// ---- Key listing --------------------------------------------------------------------------------------
struct KeyPath {
  std::string section;
  std::string key;
  std::string full() const { return section + "." + key; }
};

// Sections may nest (model.llama.rope_theta): a key's section is its dotted path.
struct KeyCollector : FieldVisitor<KeyCollector> {
  using FieldVisitor::operator();
  std::vector<std::string> sections;                             // top-level names
  std::vector<std::pair<std::string, std::string>> subsections;  // (parent path, child name)
  std::vector<KeyPath> keys;

  template <class S>
  void section(std::string_view name, S& s, std::string_view) {
    if (path_.empty()) {
      sections.emplace_back(name);
    } else {
      subsections.emplace_back(path_, name);
    }
    const std::string parent = path_;
    path_ = parent.empty() ? std::string(name) : parent + "." + std::string(name);
    s.visit(*this);
    path_ = parent;
  }
  template <class T, class C>
  void operator()(std::string_view key, T&, const C&, std::string_view) {
    keys.push_back({path_, std::string(key)});
  }

 private:
  std::string path_;
};

const KeyCollector& schema() {
  static const KeyCollector collected = [] {
    KeyCollector c;
    Config cfg;
    cfg.visit(c);
    return c;
  }();
  return collected;
}

// The closest valid key to an unknown one. Compares the full path against all paths and the last part
// against every section's keys, so `generate.seed` suggests `runtime.seed` and a top-level `num_beams`
// suggests `generate.num_beams`; a top-level name is also compared with the section names.
std::optional<std::string> suggest(std::string_view section, std::string_view key) {
  const std::string full = section.empty() ? std::string(key) : fmt::format("{}.{}", section, key);
  std::optional<std::string> best;
  size_t best_score = std::numeric_limits<size_t>::max();
  auto consider = [&](size_t score, const std::string& candidate) {
    if (score >= best_score) return;
    best_score = score;
    best = candidate;
  };
  // Same-section keys first so they win ties.
  for (const KeyPath& p : schema().keys)
    if (p.section == section)
      consider(std::min(edit_distance(key, p.key), edit_distance(full, p.full())), p.full());
  for (const KeyPath& p : schema().keys)
    consider(std::min(edit_distance(key, p.key), edit_distance(full, p.full())), p.full());
  if (section.empty())
    for (const std::string& s : schema().sections) consider(edit_distance(key, s), s);
  // Beyond a third of the word the "suggestion" is usually unrelated; listing the valid keys helps more.
  if (best_score > std::max<size_t>(2, key.size() / 3)) return std::nullopt;
  return best;
}

// The keys and sub-sections a section may hold.
std::vector<std::string> allowed_in(std::string_view section) {
  std::vector<std::string> names;
  for (const KeyPath& p : schema().keys)
    if (p.section == section) names.push_back(p.key);
  for (const auto& [parent, child] : schema().subsections)
    if (parent == section) names.push_back(child);
  return names;
}

std::string valid_keys_of(std::string_view section) {
  if (section.empty()) return fmt::format("valid sections: {}", fmt::join(schema().sections, ", "));
  return fmt::format("valid keys in '{}': {}", section, fmt::join(allowed_in(section), ", "));
}

// ---- Loading ------------------------------------------------------------------------------------------
// Where the values of one layer come from: a file (nodes carry line/column marks) or one --set argument.
struct Layer {
  std::string name;
  bool has_marks = false;
  YAML::Node root;
};

std::string where(const Layer& layer, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (!layer.has_marks || mark.is_null()) return layer.name;
  return fmt::format("{}:{}:{}", layer.name, mark.line + 1, mark.column + 1);
}

// The value as the user wrote it, for messages.
std::string written(const YAML::Node& node) {
  if (node.IsScalar()) return fmt::format("'{}'", node.Scalar());
  if (node.IsNull()) return "nothing";
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

std::optional<YAML::Node> lookup(const YAML::Node& map, std::string_view key) {
  for (const auto& entry : map)
    if (entry.first.IsScalar() && entry.first.Scalar() == key) return entry.second;
  return std::nullopt;
}

// Rejects non-scalar, duplicate and unknown keys; the loader only looks up known keys, so without this
// check a misspelt key would be silently ignored.
void check_keys(const Layer& layer, const YAML::Node& map, std::string_view section,
                const std::vector<std::string>& allowed) {
  const std::string path_prefix = section.empty() ? "" : fmt::format("{}.", section);
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const YAML::Node& k = entry.first;
    if (!k.IsScalar()) throw_input("{}: keys must be plain names, got {}", where(layer, k), written(k));
    const std::string path = path_prefix + k.Scalar();
    if (!seen.insert(k.Scalar()).second) throw_input("{}: duplicate key '{}'", where(layer, k), path);
    if (std::find(allowed.begin(), allowed.end(), k.Scalar()) != allowed.end()) continue;
    const char* what = entry.second.IsMap() ? "section" : "key";
    if (auto s = suggest(section, k.Scalar()))
      throw_input("{}: unknown {} '{}' — did you mean '{}'?", where(layer, k), what, path, *s);
    throw_input("{}: unknown {} '{}'; {}", where(layer, k), what, path, valid_keys_of(section));
  }
}

// Reads one layer into a Config, field by field, checking each value's type and constraint.
class Loader : public FieldVisitor<Loader> {
 public:
  using FieldVisitor::operator();
  explicit Loader(const Layer& layer) : layer_(layer) {}

  template <class S>
  void section(std::string_view name, S& s, std::string_view) {
    const bool top = section_name_.empty();
    const std::optional<YAML::Node> node = lookup(top ? layer_.root : section_node_, name);
    if (!node || node->IsNull()) return;  // `generate:` with nothing under it changes nothing
    const std::string path = top ? std::string(name) : section_name_ + "." + std::string(name);
    if (!node->IsMap())
      throw_input("{}: '{}' must be a mapping of keys (indented 'key: value' lines), got {}",
                  where(layer_, *node), path, written(*node));
    check_keys(layer_, *node, path, allowed_in(path));
    YAML::Node parent_node;
    parent_node.reset(section_node_);
    const std::string parent_name = section_name_;
    section_node_.reset(*node);  // rebind; Node::operator= would overwrite the previous section's content
    section_name_ = path;
    s.visit(*this);
    section_node_.reset(parent_node);
    section_name_ = parent_name;
  }

  template <class T, class C>
  void operator()(std::string_view key, T& field, const C& constraint, std::string_view) {
    const std::optional<YAML::Node> node = lookup(section_node_, key);
    if (!node) return;
    const std::string path = fmt::format("{}.{}", section_name_, key);
    T value = field;
    read(*node, path, value);
    if (auto bad = violation(value, constraint))
      throw_input("{}: {} = {}: {}", where(layer_, *node), path, written(*node), *bad);
    field = std::move(value);
  }

 private:
  template <class T>
  void read(const YAML::Node& node, const std::string& path, T& out) {
    if constexpr (IsVector<T>::value) {
      using Elem = typename T::value_type;
      if (!node.IsSequence())
        throw_input("{}: {} expects a list like [a, b] of {}, got {}", where(layer_, node), path,
                    expected_type<Elem>(), written(node));
      T items;
      for (const YAML::Node& item : node) read(item, path, items.emplace_back());
      out = std::move(items);
    } else {
      if constexpr (std::is_same_v<T, std::string>) {
        if (node.IsNull()) {  // a bare `key:` or `--set key=` reads naturally as "empty"
          out.clear();
          return;
        }
      }
      if (!node.IsScalar() || !parse_scalar(node.Scalar(), out))
        throw_input("{}: {} expects {}, got {}", where(layer_, node), path, expected_type<T>(),
                    written(node));
    }
  }

  const Layer& layer_;
  YAML::Node section_node_;
  std::string section_name_;  // dotted path of the section being read; empty at the top level
};

void apply(const Layer& layer, Config& cfg) {
  if (layer.root.IsNull()) return;  // an empty file
  if (!layer.root.IsMap())
    throw_input("{}: expected a mapping of sections ({}) at the top level, got {}", where(layer, layer.root),
                fmt::join(schema().sections, ", "), written(layer.root));
  check_keys(layer, layer.root, "", schema().sections);
  Loader loader(layer);
  cfg.visit(loader);
}

Layer read_file(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw_input("config file '{}' does not exist", name);
  if (std::filesystem::is_directory(file, ec))
    throw_input("config file '{}' is a directory, not a file", name);
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw_input("cannot read config file '{}'", name);
  try {
    return Layer{name, true, YAML::Load(text.str())};
  } catch (const YAML::ParserException& e) {
    throw_input("{}:{}:{}: YAML syntax error: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg);
  } catch (const YAML::Exception& e) {
    throw_input("{}: invalid YAML: {}", name, e.what());
  }
}

// `--set section.key=value` as a one-key layer, so it goes through exactly the checks a file does.
Layer parse_set(const std::string& text) {
  const std::string name = fmt::format("--set {}", text);
  const size_t eq = text.find('=');
  if (eq == std::string::npos)
    throw_input("{}: missing '='; expected the form --set section.key=value", name);
  const std::string key = text.substr(0, eq);
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos)
    throw_input("{}: empty key or key part; expected the form --set section.key=value", name);
  YAML::Node value;
  try {
    value.reset(YAML::Load(text.substr(eq + 1)));
  } catch (const YAML::Exception& e) {
    throw_input("{}: the value is not a valid YAML scalar or [a, b] list ({}); quote it if it is a string",
                name, e.msg);
  }
  // a.b.c=v becomes {a: {b: {c: v}}}; a key without a section is reported as an unknown top-level key.
  std::vector<std::string> parts;
  for (size_t start = 0, dot = 0; dot != std::string::npos; start = dot + 1) {
    dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
  }
  YAML::Node node = value;
  for (auto part = parts.rbegin(); part != parts.rend(); ++part) {
    YAML::Node map(YAML::NodeType::Map);
    map[*part] = node;
    node.reset(map);
  }
  return Layer{name, false, node};
}

// ---- Validation and dumping ---------------------------------------------------------------------------
struct Validator : FieldVisitor<Validator> {
  using FieldVisitor::operator();
  std::string section_name;

  template <class S>
  void section(std::string_view name, S& s, std::string_view) {
    const std::string parent = section_name;
    section_name = parent.empty() ? std::string(name) : parent + "." + std::string(name);
    s.visit(*this);
    section_name = parent;
    if constexpr (requires { s.check(); }) s.check();
  }
  template <class T, class C>
  void operator()(std::string_view key, T& field, const C& constraint, std::string_view) {
    if (auto bad = violation(field, constraint)) {
      std::string value;
      if constexpr (IsVector<T>::value)
        for (const auto& item : field) value += (value.empty() ? "" : ", ") + format_scalar(item);
      else
        value = format_scalar(field);
      throw_input("invalid config: {}.{} = '{}': {}", section_name, key, value, *bad);
    }
  }
};

class Dumper : public FieldVisitor<Dumper> {
 public:
  using FieldVisitor::operator();
  Dumper() { out_ << YAML::BeginMap; }
  std::string finish() {
    out_ << YAML::EndMap;
    // Inside a block map YAML::Newline only ends the line; the blank line before each section's comment
    // that keeps the dump readable is added here.
    std::string text;
    std::istringstream lines(out_.c_str());
    for (std::string line; std::getline(lines, line);)
      text += (!text.empty() && line.starts_with("# ") ? "\n" : "") + line + "\n";
    return text;
  }

  template <class S>
  void section(std::string_view name, S& s, std::string_view doc) {
    if (depth_ == 0) {  // yaml-cpp writes a comment at column 0, so only top-level sections carry theirs
      if (sections_++ > 0) out_ << YAML::Newline;  // else the comment would trail the previous value
      out_ << YAML::Comment(std::string(doc));
    }
    out_ << YAML::Key << std::string(name) << YAML::Value << YAML::BeginMap;
    ++depth_;
    s.visit(*this);
    --depth_;
    out_ << YAML::EndMap;
  }
  template <class T, class C>
  void operator()(std::string_view key, T& field, const C&, std::string_view doc) {
    out_ << YAML::Key << std::string(key) << YAML::Value;
    if constexpr (IsVector<T>::value) {
      out_ << YAML::Flow << YAML::BeginSeq;
      for (const auto& item : field) out_ << format_scalar(item);
      out_ << YAML::EndSeq;
    } else if constexpr (std::is_same_v<T, std::string>) {
      out_ << YAML::DoubleQuoted << field;  // "", "~", "123" and "true" must stay strings when read back
    } else {
      out_ << format_scalar(field);
    }
    out_ << YAML::Comment(std::string(doc));
  }

 private:
  YAML::Emitter out_;
  int sections_ = 0, depth_ = 0;
};

}  // namespace

Config load_config(const std::optional<std::filesystem::path>& file, const std::vector<std::string>& sets) {
  std::vector<Layer> layers;
  if (file) layers.push_back(read_file(*file));
  for (const std::string& s : sets) layers.push_back(parse_set(s));

  // Pass 1 checks every layer and finds the preset that wins (the last one written, --set after the file).
  // Pass 2 starts from that preset, so explicit keys override it wherever they appear.
  Config probe;
  for (const Layer& layer : layers) apply(layer, probe);
  Config cfg;
  apply_preset(cfg.model, probe.model.preset);
  for (const Layer& layer : layers) apply(layer, cfg);
  validate_config(cfg);
  return cfg;
}

void validate_config(const Config& cfg) {
  Config copy = cfg;  // visit takes non-const sections (the loader writes through the same list)
  Validator v;
  copy.visit(v);
  // Rules across sections.
  LETHE_CHECK_INPUT(cfg.optimizer.warmup_steps <= cfg.train.steps,
                    "invalid config: optimizer.warmup_steps ({}) exceeds train.steps ({})",
                    cfg.optimizer.warmup_steps, cfg.train.steps);
}

std::string dump_config(const Config& cfg) {
  Config copy = cfg;
  Dumper d;
  copy.visit(d);
  return d.finish();
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const KeyPath& p : schema().keys) keys.push_back(p.full());
  return keys;
}

}  // namespace lethe
