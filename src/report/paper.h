// `lethe report --paper KEY`: a paper's published rows beside the measured mean ± std, so a reproduction
// shows at a glance whether it matches. The numbers live in a data file with their source
// (configs/paper/icu.json):
//   {"about", "source", "columns": [{"label", "unit", "scale"}], "tables": {KEY: {"title", "rows":
//    [{"method", "values": {label: number}, "note"?}]}}}
// `label` is the report's column label (EL10, MA, Cls Avg, Dia Avg, Pile, Epochs); `scale` converts the
// printed number to lethe's units (EL 4.4 % -> 0.044).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/aggregate.h"

namespace lethe::report {

struct PaperColumn {
  std::string label, unit;
  double scale = 1;
};

struct PaperRow {
  std::string method, note;
  std::map<std::string, double> values;  // label -> value in the paper's units
};

struct PaperTable {
  std::string key, title, source, about;
  std::vector<PaperColumn> columns;
  std::vector<PaperRow> rows;
};

// InputError naming the file and field when malformed, or the known keys when `key` is not among them.
PaperTable read_paper_table(const std::filesystem::path& file, const std::string& key);

// Markdown: one row per published method, then this report's before and after rows (mean ± std, in the
// paper's units), for the paper's columns.
std::string paper_markdown(const PaperTable& p, const Report& r);

// {key, title, source, columns, rows: [{method, values, note}], measured: {before, after: {label:
// {mean,std,n}}}}
nlohmann::json paper_json(const PaperTable& p, const Report& r);

}  // namespace lethe::report
