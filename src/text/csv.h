// Minimal RFC 4180 CSV reader for the project's data files (pile.csv, lambada.csv, ...), whose text fields
// are quoted and hold commas, newlines (\n and \r\n, kept verbatim) and doubled quotes.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

struct CsvTable {
  std::string source;  // file name (or a label), used in error messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each has header.size() fields

  // Index of the named column; throws InputError naming the source and the columns it has.
  std::size_t column(std::string_view name) const;
};

// Comma-separated fields; a field starting with '"' is quoted and ends at a '"' not followed by another '"'
// ("" inside stands for one quote). Records end at \n, \r\n or \r outside quotes. A quote inside an unquoted
// field is kept literally (as Python's csv does). A UTF-8 byte order mark is dropped and blank lines are
// skipped. Throws InputError naming source and line for an unclosed quote, text after a closing quote, or a
// record whose field count differs from the header's.
CsvTable parse_csv(std::string_view text, std::string source);
CsvTable read_csv(const std::filesystem::path& path);

// The named column of every row, in file order.
std::vector<std::string> read_csv_column(const std::filesystem::path& path, std::string_view column);

}  // namespace lethe::text
