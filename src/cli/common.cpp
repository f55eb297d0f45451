#include "cli/common.h"

#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "model/causal_lm.h"
#include "model/hf_checkpoint.h"
#include "text/tokenizer.h"
#include "train/run_common.h"

namespace lethe::cli {
namespace fs = std::filesystem;

void ConfigOptions::add_to(po::options_description& desc) {
  desc.add_options()("config,c", po::value(&file), "YAML config file (default: built-in defaults)")(
      "set", po::value(&sets)->composing(), "override a config key: --set section.key=value (repeatable)");
}

Config ConfigOptions::load() const {
  std::optional<fs::path> path;
  if (!file.empty()) path = file;
  return load_config(path, sets);
}

std::optional<po::variables_map> parse(int argc, char** argv, const po::options_description& desc,
                                       const char* usage_line, const char* description,
                                       const po::positional_options_description* positional) {
  po::options_description all("Options");
  all.add(desc);
  all.add_options()("help,h", "show this help");
  po::variables_map vm;
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(all);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << usage_line << "\n\n" << description << "\n\n" << all << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw_input("{}\nusage: {}  (see --help)", e.what(), usage_line);
  }
  return vm;
}

void apply_runtime(const RuntimeSection& runtime) {
  static constexpr spdlog::level::level_enum levels[] = {spdlog::level::trace, spdlog::level::debug,
                                                         spdlog::level::info, spdlog::level::warn,
                                                         spdlog::level::err};
  // Logs and progress go to stderr: stdout carries only a command's results (--json lines, dumps).
  static const bool once = [] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("lethe"));
    return true;
  }();
  (void)once;
  spdlog::set_level(levels[static_cast<int>(runtime.log_level)]);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  const int threads =
      runtime.threads > 0 ? runtime.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
}

comm::DeviceRequest device_request(Device d) {
  return d == Device::kCpu    ? comm::DeviceRequest::kCpu
         : d == Device::kCuda ? comm::DeviceRequest::kCuda
                              : comm::DeviceRequest::kAuto;
}

torch::Device local_device(const Config& cfg) {
  return comm::choose_device(device_request(cfg.runtime.device), /*node_rank=*/0);
}

model::CausalLm load_model(const fs::path& dir, const Config& cfg, torch::Device device) {
  model::CausalLm m = model::load_hf_model(dir, train::torch_dtype(cfg.model.dtype), device);
  m->eval();
  return m;
}

text::Tokenizer load_tokenizer(const std::string& dir, const std::string& model_dir, const Config& cfg) {
  if (!dir.empty()) return text::Tokenizer::from_dir(dir);
  auto has_files = [](const fs::path& d) {
    return fs::exists(d / "tokenizer.json") || fs::exists(d / "vocab.json") || fs::exists(d / "encoder.json");
  };
  if (!model_dir.empty() && has_files(model_dir)) return text::Tokenizer::from_dir(model_dir);
  LETHE_CHECK_INPUT(
      !cfg.tokenizer.path.empty(),
      "no tokenizer: the model folder '{}' has no vocab.json/merges.txt or tokenizer.json; pass "
      "--tokenizer DIR or --set tokenizer.path=DIR",
      model_dir);
  return text::Tokenizer::from_dir(cfg.tokenizer.path);
}

std::vector<int64_t> parse_ids(const std::string& text, const char* option) {
  std::vector<int64_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LETHE_CHECK_INPUT(
        used == item.size() && !item.empty() && v >= 0,
        "{}: '{}' is not a token id; expected comma-separated non-negative integers like 464,2068", option,
        item);
    ids.push_back(v);
    pos = end + 1;
  }
  return ids;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump() << "\n";
}

}  // namespace lethe::cli
