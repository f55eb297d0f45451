#include "model/bert.h"

#include <cmath>
#include <cstring>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "model/safetensors.h"

namespace lethe::model {
namespace fs = std::filesystem;
namespace {

int64_t get_int(const nlohmann::json& j, const char* key, const fs::path& file, int64_t fallback = -1) {
  if (!j.contains(key)) {
    LETHE_CHECK_INPUT(fallback >= 0, "{}: key '{}' is missing; expected a BERT config.json", file.string(),
                      key);
    return fallback;
  }
  LETHE_CHECK_INPUT(j[key].is_number_integer() && j[key].get<int64_t>() > 0,
                    "{}: '{}' must be a positive integer, got {}", file.string(), key, describe_json(j[key]));
  return j[key].get<int64_t>();
}

BertConfig read_config(const fs::path& file) {
  const nlohmann::json j = nlohmann::json::parse(read_text_file(file, "a BERT config.json"), nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: not a JSON object", file.string());
  if (j.contains("model_type"))
    LETHE_CHECK_INPUT(j["model_type"] == "bert", "{}: model_type is {}, expected \"bert\"", file.string(),
                      describe_json(j["model_type"]));
  BertConfig c;
  c.vocab_size = get_int(j, "vocab_size", file);
  c.hidden_size = get_int(j, "hidden_size", file);
  c.num_layers = get_int(j, "num_hidden_layers", file);
  c.num_heads = get_int(j, "num_attention_heads", file);
  c.intermediate_size = get_int(j, "intermediate_size", file);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", file, 512);
  c.type_vocab_size = get_int(j, "type_vocab_size", file, 2);
  if (j.contains("layer_norm_eps")) c.layer_norm_eps = j["layer_norm_eps"].get<double>();
  if (j.contains("hidden_act")) c.hidden_act = j["hidden_act"].get<std::string>();
  LETHE_CHECK_INPUT(c.hidden_act == "gelu" || c.hidden_act == "gelu_new" || c.hidden_act == "relu",
                    "{}: hidden_act '{}' is not supported (gelu, gelu_new, relu)", file.string(),
                    c.hidden_act);
  LETHE_CHECK_INPUT(c.hidden_size % c.num_heads == 0,
                    "{}: hidden_size {} is not divisible by num_attention_heads {}", file.string(),
                    c.hidden_size, c.num_heads);
  return c;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return at::linear(x, w, b);
}

}  // namespace

Bert Bert::load(const fs::path& dir, int64_t max_layers, torch::Device device) {
  const fs::path cfg_file = dir / "config.json";
  LETHE_CHECK_INPUT(fs::is_regular_file(cfg_file), "{}: no config.json; expected an HF BERT folder",
                    dir.string());
  Bert b;
  b.device_ = device;
  b.cfg_ = read_config(cfg_file);
  b.layers_ = max_layers > 0 ? std::min(max_layers, b.cfg_.num_layers) : b.cfg_.num_layers;
  LETHE_CHECK_INPUT(max_layers <= b.cfg_.num_layers, "{}: layer {} requested, the model has {}", dir.string(),
                    max_layers, b.cfg_.num_layers);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
  const int64_t c = b.cfg_.hidden_size, in = b.cfg_.intermediate_size;
  std::map<std::string, std::vector<int64_t>> want = {
      {"embeddings.word_embeddings.weight", {b.cfg_.vocab_size, c}},
      {"embeddings.position_embeddings.weight", {b.cfg_.max_position_embeddings, c}},
      {"embeddings.token_type_embeddings.weight", {b.cfg_.type_vocab_size, c}},
      {"embeddings.LayerNorm.weight", {c}},
      {"embeddings.LayerNorm.bias", {c}}};
  for (int64_t l = 0; l < b.layers_; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* m :
         {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      want[p + m + ".weight"] = {c, c};
      want[p + m + ".bias"] = {c};
    }
    want[p + "intermediate.dense.weight"] = {in, c};
    want[p + "intermediate.dense.bias"] = {in};
    want[p + "output.dense.weight"] = {c, in};
    want[p + "output.dense.bias"] = {c};
    for (const char* ln : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      want[p + ln + ".weight"] = {c};
      want[p + ln + ".bias"] = {c};
    }
  }
  const bool prefixed = ckpt.find("bert.embeddings.word_embeddings.weight") != nullptr;
  for (const auto& [name, shape] : want) {
    std::string stored = (prefixed ? "bert." : "") + name;
    // The Hub's original bert-base-uncased still names LayerNorm parameters gamma / beta (transformers
    // renames them on load).
    if (ckpt.find(stored) == nullptr && name.find("LayerNorm.") != std::string::npos) {
      std::string old = stored;
      old.replace(old.rfind('.') + 1, std::string::npos, name.ends_with(".weight") ? "gamma" : "beta");
      if (ckpt.find(old) != nullptr) stored = old;
    }
    const TensorView* v = ckpt.find(stored);
    LETHE_CHECK_INPUT(v != nullptr, "{}: tensor '{}' is missing; a BERT with this config.json needs it",
                      dir.string(), stored);
    LETHE_CHECK_INPUT(v->shape == shape, "{}: tensor '{}' has the wrong shape for config.json",
                      ckpt.file_of(stored).string(), stored);
    torch::ScalarType t = v->dtype == DType::kF32    ? torch::kFloat
                          : v->dtype == DType::kF16  ? torch::kHalf
                          : v->dtype == DType::kBF16 ? torch::kBFloat16
                                                     : torch::kByte;
    LETHE_CHECK_INPUT(t != torch::kByte, "{}: tensor '{}' must be F32, F16 or BF16",
                      ckpt.file_of(stored).string(), stored);
    torch::Tensor host = torch::empty(shape, torch::TensorOptions().dtype(t));
    std::memcpy(host.data_ptr(), v->data, v->nbytes);
    b.weights_[name] = host.to(device, torch::kFloat);
  }
  return b;
}

torch::Tensor Bert::forward(const torch::Tensor& ids, const torch::Tensor& mask_in) const {
  c10::InferenceMode guard;
  const int64_t bsz = ids.size(0), t = ids.size(1), c = cfg_.hidden_size, h = cfg_.num_heads, d = c / h;
  LETHE_CHECK_INPUT(t <= cfg_.max_position_embeddings, "BERT input of {} tokens exceeds its {} positions", t,
                    cfg_.max_position_embeddings);
  LETHE_CHECK_INPUT(
      ids.numel() == 0 || (ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < cfg_.vocab_size),
      "BERT token ids outside the vocabulary of {}", cfg_.vocab_size);
  const torch::Tensor idx = ids.to(device_), mask = mask_in.to(device_);
  const std::vector<int64_t> ln{c};
  // Embeddings: word + position + token type 0, then LayerNorm. [B, T, C]
  torch::Tensor x =
      w("embeddings.word_embeddings.weight").index_select(0, idx.reshape({-1})).view({bsz, t, c}) +
      w("embeddings.position_embeddings.weight").narrow(0, 0, t).unsqueeze(0) +
      w("embeddings.token_type_embeddings.weight")[0];
  x = at::layer_norm(x, ln, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"),
                     cfg_.layer_norm_eps);
  // Additive mask [B, 1, 1, T]: 0 for tokens, the fp32 minimum for padding (HF's extended mask).
  torch::Tensor add =
      (1.0 - mask.to(torch::kFloat)).mul(std::numeric_limits<float>::lowest()).view({bsz, 1, 1, t});
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t l = 0; l < layers_; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    auto heads = [&](const char* m) {  // [B, H, T, D]
      return linear(x, w(p + m + ".weight"), w(p + m + ".bias")).view({bsz, t, h, d}).transpose(1, 2);
    };
    torch::Tensor q = heads("attention.self.query"), k = heads("attention.self.key"),
                  v = heads("attention.self.value");
    torch::Tensor att = (q.matmul(k.transpose(-1, -2)) * scale + add).softmax(-1);  // [B, H, T, T]
    torch::Tensor ctx = att.matmul(v).transpose(1, 2).reshape({bsz, t, c});
    ctx = linear(ctx, w(p + "attention.output.dense.weight"), w(p + "attention.output.dense.bias"));
    x = at::layer_norm(ctx + x, ln, w(p + "attention.output.LayerNorm.weight"),
                       w(p + "attention.output.LayerNorm.bias"), cfg_.layer_norm_eps);
    torch::Tensor hdn = linear(x, w(p + "intermediate.dense.weight"), w(p + "intermediate.dense.bias"));
    hdn = cfg_.hidden_act == "relu" ? hdn.relu()
                                    : at::gelu(hdn, cfg_.hidden_act == "gelu_new" ? "tanh" : "none");
    hdn = linear(hdn, w(p + "output.dense.weight"), w(p + "output.dense.bias"));
    x = at::layer_norm(hdn + x, ln, w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"),
                       cfg_.layer_norm_eps);
  }
  return x.clone();
}

}  // namespace lethe::model
