// CSV reader: quoting rules, line endings, and error messages that name the source and line. (The shared data
// files themselves are checked row by row against Python's csv module in bpe_test.cpp.)
#include "text/csv.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"

namespace lethe::text {
namespace {

using Rows = std::vector<std::vector<std::string>>;

TEST(Csv, QuotedFieldsKeepCommasNewlinesAndQuotes) {
  const CsvTable t = parse_csv(
      "id,text,task\n"
      "1,\"a, b\",x\n"
      "2,\"line one\nline two\r\nline three\",y\n"
      "3,\"she said \"\"hi\"\"\",\n"
      "4,,\"\"\n"
      "5,plain \"quoted\" inside,z",
      "mem.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"id", "text", "task"}));
  EXPECT_EQ(t.rows, (Rows{{"1", "a, b", "x"},
                          {"2", "line one\nline two\r\nline three", "y"},
                          {"3", "she said \"hi\"", ""},
                          {"4", "", ""},
                          {"5", "plain \"quoted\" inside", "z"}}));
  EXPECT_EQ(t.column("text"), 1u);
  EXPECT_EQ(t.source, "mem.csv");
}

TEST(Csv, LineEndingsBomAndBlankLines) {
  const CsvTable t = parse_csv("\xEF\xBB\xBF,text\r\n0,a\r\n\r\n1,\"b\"\r2,c\n\n", "mem.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"", "text"}));
  EXPECT_EQ(t.rows, (Rows{{"0", "a"}, {"1", "b"}, {"2", "c"}}));
  EXPECT_TRUE(parse_csv("", "empty.csv").rows.empty());
  EXPECT_TRUE(parse_csv("only,header", "h.csv").rows.empty());
}

TEST(Csv, ErrorsNameSourceAndLine) {
  test::expect_input_error([] { parse_csv("a,b\n1,2\n3,\"open\nstill open", "f.csv"); },
                           {"f.csv:3", "never closed"});
  test::expect_input_error([] { parse_csv("a,b\n1,\"x\"y\n", "f.csv"); },
                           {"f.csv:2", "after a closing quote"});
  test::expect_input_error([] { parse_csv("a,b\n1,2\n\"multi\nline\",2,3\n", "f.csv"); },
                           {"f.csv:3", "3 fields", "expected 2"});
  test::expect_input_error([] { parse_csv("a,b\n1,2\n", "f.csv").column("text"); },
                           {"f.csv", "\"text\"", "\"a\""});
  test::expect_input_error([] { read_csv("/nonexistent/dir/data.csv"); }, {"/nonexistent/dir/data.csv"});
}

TEST(Csv, ReadsColumnFromFile) {
  const auto path = std::filesystem::temp_directory_path() / "lethe_csv_test_column.csv";
  std::ofstream(path, std::ios::binary) << "doc_id,text,corpus\n7,\"x,\ny\",pile\n8,z,wiki\n";
  EXPECT_EQ(read_csv_column(path, "text"), (std::vector<std::string>{"x,\ny", "z"}));
  test::expect_input_error([&] { read_csv_column(path, "missing"); }, {path.string(), "\"missing\""});
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lethe::text
