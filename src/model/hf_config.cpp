// config.json: the dispatch on model_type, and GPT-Neo's half. Field names, defaults and the attention_types
// run encoding follow transformers/models/gpt_neo/configuration_gpt_neo.py so that our files load with
// GPTNeoConfig.from_pretrained and theirs load here.
#include "model/hf_config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "model/hf_config_reader.h"
#include "model/safetensors.h"

using nlohmann::json;

namespace lethe::model {

namespace {

// Guards the attention_types expansion against absurd counts; real models have at most a few hundred layers.
constexpr int64_t kMaxLayers = 1 << 16;

// [[["global","local"],6]] -> 12 alternating kinds, checked against num_layers.
std::vector<AttentionKind> expand_attention_types(const Reader& r, const json* types, int64_t num_layers) {
  constexpr std::string_view kKey = "attention_types";
  constexpr std::string_view kShape = "[[[\"global\", \"local\"], 6]]";
  if (types == nullptr) r.fail(kKey, fmt::format("is missing; expected runs like {}", kShape));
  if (!types->is_array())
    r.fail(kKey, fmt::format("must be a list of runs like {}, found {}", kShape, describe_json(*types)));
  std::vector<std::pair<std::vector<AttentionKind>, uint64_t>> runs;
  uint64_t total = 0;
  bool overflow = false;
  for (const json& run : *types) {
    const size_t run_no = runs.size();
    if (!run.is_array() || run.size() != 2 || !run[0].is_array() || run[0].empty() ||
        !run[1].is_number_unsigned())
      r.fail(kKey, fmt::format("entry {} is not [[kinds...], count] as in {}", run_no, kShape));
    std::vector<AttentionKind> pattern;
    for (const json& k : run[0]) {
      if (k == "global")
        pattern.push_back(AttentionKind::kGlobal);
      else if (k == "local")
        pattern.push_back(AttentionKind::kLocal);
      else
        r.fail(kKey,
               fmt::format("has attention kind {}; expected \"global\" or \"local\"", describe_json(k)));
    }
    // Sized before expanding so a huge count cannot exhaust memory.
    const uint64_t count = run[1].get<uint64_t>();
    if (count > (std::numeric_limits<uint64_t>::max() - total) / pattern.size()) overflow = true;
    total += count * pattern.size();
    runs.emplace_back(std::move(pattern), count);
  }
  if (overflow || total != static_cast<uint64_t>(num_layers))
    r.fail(kKey, fmt::format("expands to {} layers but num_layers is {}; the two must agree",
                             overflow ? std::string("more than 2^64") : std::to_string(total), num_layers));
  std::vector<AttentionKind> kinds;
  for (const auto& [pattern, count] : runs)
    for (uint64_t i = 0; i < count; ++i) kinds.insert(kinds.end(), pattern.begin(), pattern.end());
  return kinds;
}

// Inverse of the expansion: greedy runs, each the pattern repeated (at least twice) over the most layers from
// here, else a single layer; alternating layers become [[["global","local"],n/2]], as in the released files.
json compress_attention_types(const std::vector<AttentionKind>& kinds) {
  const auto name = [](AttentionKind k) { return k == AttentionKind::kGlobal ? "global" : "local"; };
  json runs = json::array();
  size_t i = 0;
  while (i < kinds.size()) {
    size_t best_p = 1, best_k = 1;
    for (size_t p = 1; i + p <= kinds.size(); ++p) {
      size_t k = 1;
      while (i + (k + 1) * p <= kinds.size() &&
             std::equal(kinds.begin() + i, kinds.begin() + i + p, kinds.begin() + i + k * p))
        ++k;
      if (k >= 2 && k * p > best_k * best_p) best_p = p, best_k = k;
    }
    json pattern = json::array();
    for (size_t j = 0; j < best_p; ++j) pattern.push_back(name(kinds[i + j]));
    runs.push_back({pattern, best_k});
    i += best_p * best_k;
  }
  return runs;
}

}  // namespace

GptNeoConfig read_gpt_neo_config(const Reader& r) {
  GptNeoConfig c;
  c.vocab_size = r.integer({"vocab_size"}, std::nullopt, 1);
  c.max_position_embeddings = r.integer({"max_position_embeddings"}, std::nullopt, 1);
  c.hidden_size = r.integer({"hidden_size"}, std::nullopt, 1);
  c.num_layers = r.integer({"num_layers", "num_hidden_layers"}, std::nullopt, 1, kMaxLayers);
  c.num_heads = r.integer({"num_heads", "num_attention_heads"}, std::nullopt, 1);
  const json* inter = r.find({"intermediate_size"});
  c.intermediate_size = inter == nullptr || inter->is_null() ? 0 : r.integer({"intermediate_size"}, 0, 1);
  c.window_size = r.integer({"window_size"}, 256, 1);
  c.layer_norm_epsilon = r.number("layer_norm_epsilon", 1e-5);
  if (!(c.layer_norm_epsilon > 0.0))
    r.fail("layer_norm_epsilon", fmt::format("is {}; expected > 0", c.layer_norm_epsilon));
  c.initializer_range = r.number("initializer_range", 0.02);
  if (!(c.initializer_range >= 0.0))
    r.fail("initializer_range", fmt::format("is {}; expected >= 0", c.initializer_range));
  c.activation_function = r.string("activation_function", "gelu_new");
  c.bos_token_id = r.integer({"bos_token_id"}, 50256, 0, c.vocab_size - 1);
  c.eos_token_id = r.integer({"eos_token_id"}, 50256, 0, c.vocab_size - 1);
  c.attention_layers = expand_attention_types(r, r.find({"attention_types"}), c.num_layers);

  if (c.activation_function != "gelu_new")
    r.fail("activation_function",
           fmt::format("'{}' is not supported; GPT-Neo uses 'gelu_new'", c.activation_function));
  if (c.hidden_size % c.num_heads != 0)
    r.fail("hidden_size", fmt::format("{} is not divisible by num_heads {}", c.hidden_size, c.num_heads));
  return c;
}

ModelConfig parse_hf_config(const std::string& text, const std::string& where) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw_input("{}: not valid JSON ({})", where, e.what());
  }
  if (!root.is_object()) throw_input("{}: expected a JSON object, found {}", where, root.type_name());
  const Reader r(where, root);
  const std::string model_type = r.string("model_type", std::nullopt);
  if (model_type == "gpt_neo") return read_gpt_neo_config(r);
  if (model_type == "llama") return read_llama_config(r);
  r.fail("model_type", fmt::format("'{}' is not supported; lethe loads 'gpt_neo' (GPTNeoForCausalLM) and "
                                   "'llama' (LlamaForCausalLM)",
                                   model_type));
}

ModelConfig read_hf_config(const std::filesystem::path& config_json) {
  return parse_hf_config(read_text_file(config_json, "a Hugging Face config.json"), config_json.string());
}

std::string hf_config_text(const ModelConfig& config, std::string_view dtype) {
  const json j =
      config.gpt_neo() ? gpt_neo_json(*config.gpt_neo(), dtype) : llama_json(*config.llama(), dtype);
  // nlohmann::json objects are key-sorted, matching transformers' to_json_string(sort_keys=True).
  return j.dump(2) + "\n";
}

void write_hf_config(const std::filesystem::path& config_json, const ModelConfig& config,
                     std::string_view dtype) {
  const std::string text = hf_config_text(config, dtype);
  write_file_atomic(config_json, {std::as_bytes(std::span(text))});
}

json gpt_neo_json(const GptNeoConfig& c, std::string_view dtype) {
  if (static_cast<int64_t>(c.attention_layers.size()) != c.num_layers)
    throw std::invalid_argument(fmt::format("write_hf_config: {} attention_layers for num_layers {}",
                                            c.attention_layers.size(), c.num_layers));
  json layers = json::array();
  for (AttentionKind k : c.attention_layers)
    layers.push_back(k == AttentionKind::kGlobal ? "global" : "local");

  return {
      {"activation_function", c.activation_function},
      {"architectures", {"GPTNeoForCausalLM"}},
      {"attention_dropout", 0.0},
      {"attention_layers", layers},
      {"attention_types", compress_attention_types(c.attention_layers)},
      {"bos_token_id", c.bos_token_id},
      {"classifier_dropout", 0.1},
      {"dtype", std::string(dtype)},
      {"embed_dropout", 0.0},
      {"eos_token_id", c.eos_token_id},
      {"hidden_size", c.hidden_size},
      {"initializer_range", c.initializer_range},
      {"intermediate_size", c.intermediate_size > 0 ? json(c.intermediate_size) : json(nullptr)},
      {"layer_norm_epsilon", c.layer_norm_epsilon},
      {"max_position_embeddings", c.max_position_embeddings},
      {"model_type", "gpt_neo"},
      {"num_heads", c.num_heads},
      {"num_layers", c.num_layers},
      {"pad_token_id", nullptr},
      {"resid_dropout", 0.0},
      {"tie_word_embeddings", true},
      {"torch_dtype", std::string(dtype)},  // transformers < 4.56 reads this name; newer ones read "dtype"
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
      {"window_size", c.window_size},
  };
}

}  // namespace lethe::model
