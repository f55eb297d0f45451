// `lethe config --config F [--set k=v]... --dump`: the resolved, validated config as YAML.
#include <iostream>

#include "cli/common.h"

namespace lethe::cli {

int run_config(int argc, char** argv) {
  ConfigOptions co;
  bool dump = false, keys = false;
  po::options_description desc;
  co.add_to(desc);
  desc.add_options()("dump", po::bool_switch(&dump), "print the resolved config as YAML")(
      "keys", po::bool_switch(&keys), "list every valid key path");
  if (!parse(argc, argv, desc, "lethe config [--config F] [--set k=v]... (--dump | --keys)",
             "Resolves defaults, preset, file and overrides; validates; prints. Exit 2 on any invalid key or "
             "value."))
    return 0;
  Config cfg = co.load();  // validates even without --dump
  if (keys)
    for (const auto& k : config_keys()) std::cout << k << "\n";
  if (dump || !keys) std::cout << dump_config(cfg);
  return 0;
}

}  // namespace lethe::cli
