// `lethe prep --config F [--set k=v]... [--json]`: forget-target selection and nearest-neighbour pairs
// (prep/prep.h), written to <prep.output_dir>/<prep.name>/pairs.h5.
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "prep/prep.h"

namespace lethe::cli {

int run_prep(int argc, char** argv) {
  ConfigOptions co;
  bool json = false;
  po::options_description desc;
  desc.add_options()("json", po::bool_switch(&json), "print the summary as one JSON line");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc, "lethe prep --config F [--set k=v]... [--json]",
          "Selects the forget targets (prep.forget_csv doc ids, prep.forget_ids or prep.forget_random) from "
          "prep.source, embeds every row (prep.embedder: tfidf or lm), finds each target's prep.k nearest "
          "non-target rows by exact L2 search and writes <prep.output_dir>/<prep.name>/pairs.h5 (pair i = "
          "target i and its nearest neighbour)."))
    return 0;
  Config cfg = co.load();
  apply_runtime(cfg.runtime);
  const prep::PrepOutcome o = prep::run_prep(cfg, local_device(cfg));
  if (json) {
    print_json({{"file", o.file.string()},
                {"targets", o.targets},
                {"pool", o.pool},
                {"distinct_neighbours", o.distinct_neighbours}});
  } else {
    spdlog::info("prep: {} targets, {} distinct nearest neighbours among {} rows -> {}", o.targets,
                 o.distinct_neighbours, o.pool, o.file.string());
  }
  return 0;
}

}  // namespace lethe::cli
