// `lethe config --config F [--set k=v]... (--dump | --keys | --get KEY)`: the resolved, validated config as
// YAML, the valid key paths, or one resolved value (for scripts: cluster/submit-icu-experiments.sh).
#include <algorithm>
#include <iostream>

#include <yaml-cpp/yaml.h>

#include "cli/common.h"
#include "core/error.h"

namespace lethe::cli {

int run_config(int argc, char** argv) {
  ConfigOptions co;
  bool dump = false, keys = false;
  std::string get;
  po::options_description desc;
  co.add_to(desc);
  desc.add_options()("dump", po::bool_switch(&dump), "print the resolved config as YAML")(
      "keys", po::bool_switch(&keys), "list every valid key path")(
      "get", po::value(&get), "print one resolved value (a key path such as run.output_dir)");
  if (!parse(argc, argv, desc, "lethe config [--config F] [--set k=v]... (--dump | --keys | --get KEY)",
             "Resolves defaults, preset, file and overrides; validates; prints. Exit 2 on any invalid key or "
             "value."))
    return 0;
  Config cfg = co.load();  // validates even without --dump
  if (!get.empty()) {
    const auto all = config_keys();
    LETHE_CHECK_INPUT(std::find(all.begin(), all.end(), get) != all.end(),
                      "--get {}: no such key (lethe config --keys lists them)", get);
    // The dump is the one rendering of resolved values; walk it rather than keep a second key table.
    YAML::Node node = YAML::Load(dump_config(cfg));
    for (size_t b = 0, e; b <= get.size(); b = e + 1) {
      e = std::min(get.find('.', b), get.size());
      node = node[get.substr(b, e - b)];
    }
    if (node.IsSequence() || node.IsMap())
      std::cout << YAML::Dump(node) << "\n";
    else
      std::cout << node.as<std::string>() << "\n";
    return 0;
  }
  if (keys)
    for (const auto& k : config_keys()) std::cout << k << "\n";
  if (dump || !keys) std::cout << dump_config(cfg);
  return 0;
}

}  // namespace lethe::cli
