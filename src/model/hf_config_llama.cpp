// config.json for Llama: the fields of transformers/models/llama/configuration_llama.py, the rotary settings
// in both the transformers 5 (`rope_parameters`) and 4.x (`rope_theta` + `rope_scaling`) forms.
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/io.h"
#include "model/hf_config_reader.h"

using nlohmann::json;

namespace lethe::model {
namespace {

constexpr int64_t kMaxLayers = 1 << 16;

// The rope settings: transformers 5 nests rope_theta inside rope_parameters; 4.x keeps it at the top level
// and puts the scaling (or null) in rope_scaling, naming the kind `type` before 4.45 and `rope_type` after.
void read_rope(const Reader& top, LlamaConfig& c) {
  const char* name = top.find({"rope_parameters"}) ? "rope_parameters" : "rope_scaling";
  const json* params = top.find_set({name});
  if (params != nullptr && !params->is_object())
    top.fail(name, fmt::format("must be an object or null, found {}", describe_json(*params)));
  static const json kEmpty = json::object();
  const Reader r(top.file(), params ? *params : kEmpty, std::string(name) + ".");
  c.rope_theta =
      r.find({"rope_theta"}) ? r.number("rope_theta", std::nullopt) : top.number("rope_theta", 10000.0);
  if (!(c.rope_theta > 0.0)) top.fail("rope_theta", fmt::format("is {}; expected > 0", c.rope_theta));
  const std::string type =
      r.find({"rope_type"}) ? r.string("rope_type", std::nullopt) : r.string("type", "default");
  RopeScaling& s = c.rope_scaling;
  if (type == "default") {
    s.type = RopeType::kNone;
    return;
  }
  if (type != "linear" && type != "llama3")
    r.fail("rope_type",
           fmt::format("'{}' is not supported; lethe implements 'default', 'linear' and 'llama3'", type));
  s.type = type == "linear" ? RopeType::kLinear : RopeType::kLlama3;
  s.factor = r.number("factor", std::nullopt);
  if (!(s.factor >= 1.0)) r.fail("factor", fmt::format("is {}; expected >= 1", s.factor));
  if (s.type == RopeType::kLinear) return;
  s.low_freq_factor = r.number("low_freq_factor", std::nullopt);
  s.high_freq_factor = r.number("high_freq_factor", std::nullopt);
  s.original_max_position_embeddings = r.integer({"original_max_position_embeddings"}, std::nullopt, 1);
  if (!(s.low_freq_factor > 0.0 && s.high_freq_factor > s.low_freq_factor))
    r.fail("high_freq_factor", fmt::format("is {} with low_freq_factor {}; expected 0 < low < high",
                                           s.high_freq_factor, s.low_freq_factor));
}

// eos_token_id: an integer, a list of integers, or null (none); missing = transformers' default 2.
std::vector<int64_t> read_eos(const Reader& r, const json* v, int64_t vocab) {
  if (v == nullptr) return {std::min<int64_t>(2, vocab - 1)};
  if (v->is_null()) return {};
  std::vector<int64_t> ids;
  const json list = v->is_array() ? *v : json::array({*v});
  for (const json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab)
      r.fail("eos_token_id", fmt::format("has {}; expected token ids in [0, {}) (an integer or a list)",
                                         describe_json(id), vocab));
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

}  // namespace

LlamaConfig read_llama_config(const Reader& r) {
  LlamaConfig c;
  c.vocab_size = r.integer({"vocab_size"}, std::nullopt, 1);
  c.hidden_size = r.integer({"hidden_size"}, std::nullopt, 1);
  c.intermediate_size = r.integer({"intermediate_size"}, std::nullopt, 1);
  c.num_layers = r.integer({"num_hidden_layers"}, std::nullopt, 1, kMaxLayers);
  c.num_heads = r.integer({"num_attention_heads"}, std::nullopt, 1);
  c.num_kv_heads =
      r.find_set({"num_key_value_heads"}) ? r.integer({"num_key_value_heads"}, std::nullopt, 1) : c.num_heads;
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", fmt::format("is {}, which does not divide num_attention_heads {}; each "
                                              "key/value head must serve a whole number of query heads",
                                              c.num_kv_heads, c.num_heads));
  c.head_size = r.find_set({"head_dim"}) ? r.integer({"head_dim"}, std::nullopt, 2) : 0;
  if (c.head_size == 0 && c.hidden_size % c.num_heads != 0)
    r.fail("hidden_size",
           fmt::format("{} is not divisible by num_attention_heads {} (and head_dim is not given)",
                       c.hidden_size, c.num_heads));
  if (c.head_dim() % 2 != 0)
    r.fail("head_dim", fmt::format("is {}; rotary embeddings need an even size", c.head_dim()));
  c.max_position_embeddings = r.integer({"max_position_embeddings"}, 2048, 1);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0.0)) r.fail("rms_norm_eps", fmt::format("is {}; expected > 0", c.rms_norm_eps));
  c.initializer_range = r.number("initializer_range", 0.02);
  if (!(c.initializer_range >= 0.0))
    r.fail("initializer_range", fmt::format("is {}; expected >= 0", c.initializer_range));
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", fmt::format("'{}' is not supported; Llama uses 'silu'", act));
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.attention_bias = r.boolean("attention_bias", false);
  c.mlp_bias = r.boolean("mlp_bias", false);
  // Missing = transformers' default 1; null = none.
  const json* bos = r.find({"bos_token_id"});
  c.bos_token_id = bos == nullptr   ? std::min<int64_t>(1, c.vocab_size - 1)
                   : bos->is_null() ? -1
                                    : r.integer({"bos_token_id"}, std::nullopt, 0, c.vocab_size - 1);
  c.eos_token_ids = read_eos(r, r.find({"eos_token_id"}), c.vocab_size);
  c.pad_token_id =
      r.find_set({"pad_token_id"}) ? r.integer({"pad_token_id"}, std::nullopt, 0, c.vocab_size - 1) : -1;
  // pretraining_tp > 1 made transformers 4.x split each projection into slices and sum them: the same
  // products in another order (transformers 5 no longer reads it). It is validated and otherwise ignored.
  if (r.find_set({"pretraining_tp"})) r.integer({"pretraining_tp"}, 1, 1);
  read_rope(r, c);
  return c;
}

json llama_json(const LlamaConfig& c, std::string_view dtype) {
  const RopeScaling& s = c.rope_scaling;
  json rope = {{"rope_theta", c.rope_theta}, {"rope_type", "default"}};
  if (s.type != RopeType::kNone) {
    rope["rope_type"] = s.type == RopeType::kLinear ? "linear" : "llama3";
    rope["factor"] = s.factor;
  }
  if (s.type == RopeType::kLlama3) {
    rope["low_freq_factor"] = s.low_freq_factor;
    rope["high_freq_factor"] = s.high_freq_factor;
    rope["original_max_position_embeddings"] = s.original_max_position_embeddings;
  }
  json scaling = nullptr;  // 4.x: null for the default, else the parameters with both names of the kind
  if (s.type != RopeType::kNone) {
    scaling = rope;
    scaling.erase("rope_theta");
    scaling["type"] = rope["rope_type"];
  }
  const auto id_or_null = [](int64_t id) { return id >= 0 ? json(id) : json(nullptr); };
  const json eos = c.eos_token_ids.empty()       ? json(nullptr)
                   : c.eos_token_ids.size() == 1 ? json(c.eos_token_ids.front())
                                                 : json(c.eos_token_ids);
  return {
      {"architectures", {"LlamaForCausalLM"}},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"bos_token_id", id_or_null(c.bos_token_id)},
      {"dtype", std::string(dtype)},
      {"eos_token_id", eos},
      {"head_dim", c.head_dim()},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", c.initializer_range},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"mlp_bias", c.mlp_bias},
      {"model_type", "llama"},
      {"num_attention_heads", c.num_heads},
      {"num_hidden_layers", c.num_layers},
      {"num_key_value_heads", c.num_kv_heads},
      {"pad_token_id", id_or_null(c.pad_token_id)},
      {"pretraining_tp", 1},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_parameters", rope},
      {"rope_scaling", scaling},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", std::string(dtype)},  // transformers < 4.56 reads this name; newer ones read "dtype"
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
}

}  // namespace lethe::model
