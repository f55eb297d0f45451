// `lethe report RUN... [--out DIR] [--title T] [--paper KEY] [--json]`: the paper-style table (mean ± std
// over runs) as markdown and CSV, per-epoch curves with bands as SVG (report/aggregate.h), and with --paper
// the published rows beside the measured ones (report/paper.h).
#include <iostream>
#include <optional>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/io.h"
#include "report/aggregate.h"
#include "report/paper.h"
#include "report/run_data.h"

namespace lethe::cli {

int run_report(int argc, char** argv) {
  std::vector<std::string> dirs;
  std::string out, title = "lethe report", paper, paper_file = "configs/paper/icu.json";
  bool json = false;
  po::options_description desc;
  desc.add_options()("runs", po::value(&dirs)->multitoken()->required(),
                     "finished lethe unlearn run folders (e.g. results/run-*)")(
      "out", po::value(&out), "output folder (default: <parent of the first run>/report)")(
      "title", po::value(&title), "heading of report.md")(
      "paper", po::value(&paper),
      "print the paper's published rows beside the measured ones: icu-125m | icu-1.3b | icu-2.7b")(
      "paper-file", po::value(&paper_file)->default_value(paper_file),
      "the published numbers, with their source (JSON, see report/paper.h)")(
      "json", po::bool_switch(&json), "also print the table as JSON on stdout");
  po::positional_options_description pos;
  pos.add("runs", -1);
  if (!parse(argc, argv, desc, "lethe report RUN... [--out DIR] [--title T] [--paper KEY] [--json]",
             "Aggregates finished lethe unlearn runs (e.g. ICU's exp0-exp4): mean ± std over runs of EL, MA, "
             "BLEU, BERT F1, entropy, the utility summaries (Cls Avg, Dia Avg, Pile, Wikitext) and epochs to "
             "stop, before and after unlearning. Writes report.md, summary.csv, runs.csv and "
             "curves-<metric>.svg (per-epoch mean ± std bands).",
             &pos))
    return 0;
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  std::optional<report::PaperTable> published;
  if (!paper.empty()) {  // before any work
    std::filesystem::path file = paper_file;
    if (file.is_relative() && !std::filesystem::exists(file)) {
      // Run from elsewhere: the checkout the binary was built in (build/lethe -> ../configs/...).
      const std::filesystem::path beside =
          std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / file;
      if (std::filesystem::exists(beside)) file = beside;
    }
    published = report::read_paper_table(file, paper);
  }
  std::vector<report::RunData> runs;
  for (const std::string& d : dirs) runs.push_back(report::load_run(d));
  const report::Report r = report::aggregate(runs);
  const std::filesystem::path out_dir =
      out.empty() ? std::filesystem::path(dirs.front()).lexically_normal().parent_path() / "report"
                  : std::filesystem::path(out);
  for (const auto& p : report::write_report(r, out_dir, title)) std::cerr << "wrote " << p.string() << "\n";
  if (published) {
    const std::string md = report::paper_markdown(*published, r);
    write_file_atomic(out_dir / "paper.md", {std::as_bytes(std::span(md.data(), md.size()))});
    std::cerr << "wrote " << (out_dir / "paper.md").string() << "\n";
    if (!json) std::cout << md;
  }
  if (json) {
    nlohmann::json j = report::report_json(r);
    if (published) j["paper"] = report::paper_json(*published, r);
    print_json(j);
  }
  return 0;
}

}  // namespace lethe::cli
