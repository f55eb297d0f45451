#include "text/csv.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/io.h"

namespace lethe::text {

std::size_t CsvTable::column(std::string_view name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  throw_input("{}: no column {:?}, expected one of {}", source, name, header);
}

CsvTable parse_csv(std::string_view text, std::string source) {
  CsvTable table;
  table.source = std::move(source);
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::size_t i = 0, line = 1;
  bool have_header = false;
  const auto at_record_end = [&] { return i >= text.size() || text[i] == '\n' || text[i] == '\r'; };
  const auto skip_record_end = [&] {
    if (i < text.size() && text[i] == '\r') ++i;
    if (i < text.size() && text[i] == '\n') ++i;
    ++line;
  };
  while (i < text.size()) {
    if (at_record_end()) {  // blank line
      skip_record_end();
      continue;
    }
    const std::size_t record_line = line;
    std::vector<std::string> record;
    while (true) {
      std::string field;
      if (i < text.size() && text[i] == '"') {
        const std::size_t quote_line = line;
        for (++i;; ++i) {
          if (i >= text.size())
            throw_input("{}:{}: quoted field is never closed, expected a closing '\"'", table.source,
                        quote_line);
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field.push_back('"');
              ++i;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field.push_back(text[i]);
        }
        if (!at_record_end() && text[i] != ',')
          throw_input("{}:{}: found {:?} after a closing quote, expected ',' or the end of the record",
                      table.source, line, text.substr(i, 1));
      } else {
        const std::size_t end = text.find_first_of(",\r\n", i);
        const std::size_t stop = end == std::string_view::npos ? text.size() : end;
        field.assign(text.substr(i, stop - i));
        i = stop;
      }
      record.push_back(std::move(field));
      if (at_record_end()) break;
      ++i;  // the comma
    }
    skip_record_end();
    if (!have_header) {
      table.header = std::move(record);
      have_header = true;
      continue;
    }
    if (record.size() != table.header.size())
      throw_input("{}:{}: record has {} fields, expected {} as in the header", table.source, record_line,
                  record.size(), table.header.size());
    table.rows.push_back(std::move(record));
  }
  return table;
}

CsvTable read_csv(const std::filesystem::path& path) {
  return parse_csv(read_text_file(path, "a CSV file with a header row"), path.string());
}

std::vector<std::string> read_csv_column(const std::filesystem::path& path, std::string_view column) {
  CsvTable table = read_csv(path);
  const std::size_t c = table.column(column);
  std::vector<std::string> out;
  out.reserve(table.rows.size());
  for (auto& row : table.rows) out.push_back(std::move(row[c]));
  return out;
}

}  // namespace lethe::text
