#include "report/paper.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"

namespace lethe::report {
namespace fs = std::filesystem;
namespace {

std::string text(const nlohmann::json& o, const char* key, const std::string& where) {
  LETHE_CHECK_INPUT(o.is_object() && o.contains(key) && o[key].is_string(), "{}: '{}' must be a string",
                    where, key);
  return o[key].get<std::string>();
}

// Mean ± std of column `label` of r at one stage, in the paper's units; "—" when the report lacks it.
std::string measured(const Report& r, const PaperColumn& c, bool after) {
  for (const Column& col : r.columns)
    if (col.label == c.label) {
      const Stat s = stat(after ? col.after : col.before);
      if (s.n == 0) return "—";
      const double m = s.mean / c.scale, sd = s.std / c.scale;
      return std::isfinite(sd) ? fmt::format("{:.4g} ± {:.2g}", m, sd) : fmt::format("{:.4g}", m);
    }
  return "—";
}

}  // namespace

PaperTable read_paper_table(const fs::path& file, const std::string& key) {
  const std::string where = file.string();
  const nlohmann::json j =
      nlohmann::json::parse(read_text_file(file, "a paper-results file"), nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: not a JSON object", where);
  PaperTable p;
  p.key = key;
  p.about = text(j, "about", where);
  p.source = text(j, "source", where);
  LETHE_CHECK_INPUT(j.contains("columns") && j["columns"].is_array(), "{}: 'columns' must be a list", where);
  for (const auto& c : j["columns"]) {
    PaperColumn col{text(c, "label", where + " columns[]"), text(c, "unit", where + " columns[]"), 1};
    LETHE_CHECK_INPUT(c.contains("scale") && c["scale"].is_number() && c["scale"].get<double>() > 0,
                      "{}: columns[{}].scale must be a positive number", where, col.label);
    col.scale = c["scale"].get<double>();
    p.columns.push_back(col);
  }
  LETHE_CHECK_INPUT(j.contains("tables") && j["tables"].is_object(), "{}: 'tables' must be an object", where);
  const auto& tables = j["tables"];
  if (!tables.contains(key)) {
    std::string known;
    for (const auto& [k, v] : tables.items()) known += (known.empty() ? "" : ", ") + k;
    throw_input("--paper {}: {} has no such table; known: {}", key, where, known);
  }
  const auto& t = tables[key];
  const std::string tw = fmt::format("{} tables.{}", where, key);
  p.title = text(t, "title", tw);
  LETHE_CHECK_INPUT(t.contains("rows") && t["rows"].is_array(), "{}: 'rows' must be a list", tw);
  for (const auto& row : t["rows"]) {
    PaperRow pr{text(row, "method", tw), row.contains("note") ? text(row, "note", tw) : "", {}};
    LETHE_CHECK_INPUT(row.contains("values") && row["values"].is_object(),
                      "{}: {}: 'values' must be an object", tw, pr.method);
    for (const auto& [label, v] : row["values"].items()) {
      bool known = false;
      for (const auto& c : p.columns) known = known || c.label == label;
      LETHE_CHECK_INPUT(known && v.is_number(), "{}: {}: '{}' must be a number of a declared column", tw,
                        pr.method, label);
      pr.values[label] = v.get<double>();
    }
    p.rows.push_back(std::move(pr));
  }
  return p;
}

std::string paper_markdown(const PaperTable& p, const Report& r) {
  std::string md = fmt::format("## Beside the paper: {} ({})\n\n| |", p.title, p.key), rule = "|---|";
  for (const auto& c : p.columns) {
    md += c.unit.empty() ? fmt::format(" {} |", c.label) : fmt::format(" {} ({}) |", c.label, c.unit);
    rule += "---|";
  }
  md += "\n" + rule + "\n";
  std::string notes;
  for (const PaperRow& row : p.rows) {
    md += fmt::format("| paper: {} |", row.method);
    for (const auto& c : p.columns) {
      const auto it = row.values.find(c.label);
      md += it == row.values.end() ? std::string(" |") : fmt::format(" {:g} |", it->second);
    }
    md += "\n";
    if (!row.note.empty()) notes += fmt::format("- paper, {}: {}\n", row.method, row.note);
  }
  for (const bool after : {false, true}) {
    md += fmt::format("| this report, {} ({} run(s)) |", after ? "after" : "before", r.runs.size());
    for (const auto& c : p.columns) md += fmt::format(" {} |", measured(r, c, after));
    md += "\n";
  }
  return md + "\n" + notes + fmt::format("\nSource: {}. {}\n", p.source, p.about);
}

nlohmann::json paper_json(const PaperTable& p, const Report& r) {
  nlohmann::json rows = nlohmann::json::array(), cols = nlohmann::json::array();
  for (const auto& row : p.rows)
    rows.push_back({{"method", row.method}, {"values", row.values}, {"note", row.note}});
  for (const auto& c : p.columns) cols.push_back({{"label", c.label}, {"unit", c.unit}, {"scale", c.scale}});
  return {{"key", p.key},    {"title", p.title}, {"source", p.source},
          {"columns", cols}, {"rows", rows},     {"measured", report_json(r)["columns"]}};
}

}  // namespace lethe::report
