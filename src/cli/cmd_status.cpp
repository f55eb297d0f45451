// `lethe status RUN [--json]`: where a running or finished run stands (report/status.h), read from its folder
// while the job goes on — no MPI, no model.
#include <iostream>

#include "cli/common.h"
#include "report/run_data.h"
#include "report/status.h"

namespace lethe::cli {

int run_status(int argc, char** argv) {
  std::string dir;
  bool json = false;
  po::options_description desc;
  desc.add_options()("run", po::value(&dir)->required(), "the run folder (<run.output_dir>/<run.name>)")(
      "json", po::bool_switch(&json), "machine-readable output");
  po::positional_options_description pos;
  pos.add("run", 1);
  if (!parse(
          argc, argv, desc, "lethe status RUN [--json]",
          "Summarises a running or finished lethe train / unlearn run from its folder: state (running, "
          "stopped by a signal, finished), step and epoch, active pairs, the last validation or step, ETA, "
          "the last checkpoint, launches and Slurm requeues (metrics.h5 /launches, /stops).",
          &pos))
    return 0;
  const nlohmann::json s = report::run_status(report::load_run(dir));
  if (json)
    print_json(s);
  else
    std::cout << report::format_status(s);
  return 0;
}

}  // namespace lethe::cli
