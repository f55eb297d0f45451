// `lethe report RUN... [--out DIR] [--title T] [--json]`: the paper-style table (mean ± std over runs) as
// markdown and CSV, plus per-epoch curves with bands as SVG (report/aggregate.h).
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "report/aggregate.h"
#include "report/run_data.h"

namespace lethe::cli {

int run_report(int argc, char** argv) {
  std::vector<std::string> dirs;
  std::string out, title = "lethe report";
  bool json = false;
  po::options_description desc;
  desc.add_options()("runs", po::value(&dirs)->multitoken()->required(),
                     "finished lethe unlearn run folders (e.g. results/run-*)")(
      "out", po::value(&out), "output folder (default: <parent of the first run>/report)")(
      "title", po::value(&title), "heading of report.md")("json", po::bool_switch(&json),
                                                          "also print the table as JSON on stdout");
  po::positional_options_description pos;
  pos.add("runs", -1);
  if (!parse(argc, argv, desc, "lethe report RUN... [--out DIR] [--title T] [--json]",
             "Aggregates finished lethe unlearn runs (e.g. ICU's exp0-exp4): mean ± std over runs of EL, MA, "
             "BLEU, BERT F1, entropy, the utility summaries (Cls Avg, Dia Avg, Pile, Wikitext) and epochs to "
             "stop, before and after unlearning. Writes report.md, summary.csv, runs.csv and "
             "curves-<metric>.svg (per-epoch mean ± std bands).",
             &pos))
    return 0;
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  std::vector<report::RunData> runs;
  for (const std::string& d : dirs) runs.push_back(report::load_run(d));
  const report::Report r = report::aggregate(runs);
  const std::filesystem::path out_dir =
      out.empty() ? std::filesystem::path(dirs.front()).lexically_normal().parent_path() / "report"
                  : std::filesystem::path(out);
  for (const auto& p : report::write_report(r, out_dir, title)) std::cerr << "wrote " << p.string() << "\n";
  if (json) print_json(report::report_json(r));
  return 0;
}

}  // namespace lethe::cli
