// Pieces every subcommand shares: option parsing with Boost.Program_options (usage generated from the option
// table), the --config/--set pair, runtime set-up from the config, and loading model + tokenizer.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "comm/device.h"
#include "config/config.h"

namespace lethe::model {
class CausalLm;
}
namespace lethe::text {
class Tokenizer;
}

namespace lethe::cli {
namespace po = boost::program_options;

// A subcommand: `lethe <name> ...`. argv[0] is "lethe <name>".
struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

// --config F and repeatable --set k=v.
struct ConfigOptions {
  std::string file;
  std::vector<std::string> sets;
  void add_to(po::options_description& desc);
  Config load() const;
};

// Parses argv against `desc` (plus --help). Returns nullopt after printing usage when --help was given.
// Unknown options and bad values become InputError with the usage hint.
std::optional<po::variables_map> parse(int argc, char** argv, const po::options_description& desc,
                                       const char* usage_line, const char* description,
                                       const po::positional_options_description* positional = nullptr);

// Threads, log level; call once the config is resolved.
void apply_runtime(const RuntimeSection& runtime);

// runtime.device as the device layer's request.
comm::DeviceRequest device_request(Device d);

// The device of a single-process command (generate, score, prep): runtime.device, the first visible GPU for
// cuda (made current). InputError with the fix when cuda is asked for and cannot be had.
torch::Device local_device(const Config& cfg);

// The model named by --model DIR (HF folder) in the config's dtype, built on `device`.
model::CausalLm load_model(const std::filesystem::path& dir, const Config& cfg, torch::Device device);

// The tokenizer from `dir` (or, when empty, the model folder, then tokenizer.path from the config).
text::Tokenizer load_tokenizer(const std::string& dir, const std::string& model_dir, const Config& cfg);

// "1,2,3" → ids; InputError naming the option on anything else.
std::vector<int64_t> parse_ids(const std::string& text, const char* option);

void print_json(const nlohmann::json& j);

}  // namespace lethe::cli
