#include "io/checkpoint_model.h"

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "model/hf_config.h"

namespace lethe::io {
namespace fs = std::filesystem;
namespace {

model::GptNeoConfig architecture_from_json(const std::string& text, const fs::path& file) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: /architecture is not a JSON object",
                    file.string());
  model::GptNeoConfig a;
  try {
    a.vocab_size = j.at("vocab_size").get<int64_t>();
    a.max_position_embeddings = j.at("max_position_embeddings").get<int64_t>();
    a.hidden_size = j.at("hidden_size").get<int64_t>();
    a.num_layers = j.at("num_layers").get<int64_t>();
    a.num_heads = j.at("num_heads").get<int64_t>();
    a.intermediate_size = j.at("intermediate_size").get<int64_t>();
    a.window_size = j.at("window_size").get<int64_t>();
    a.layer_norm_epsilon = j.at("layer_norm_epsilon").get<double>();
    a.activation_function = j.at("activation_function").get<std::string>();
    for (const auto& k : j.at("attention_layers"))
      a.attention_layers.push_back(k.get<std::string>() == "global" ? model::AttentionKind::kGlobal
                                                                    : model::AttentionKind::kLocal);
  } catch (const nlohmann::json::exception& e) {
    throw_input("{}: /architecture: {}", file.string(), e.what());
  }
  LETHE_CHECK_INPUT(static_cast<int64_t>(a.attention_layers.size()) == a.num_layers,
                    "{}: /architecture lists {} attention layers for {} layers", file.string(),
                    a.attention_layers.size(), a.num_layers);
  return a;
}

}  // namespace

std::optional<fs::path> checkpoint_folder(const fs::path& path) {
  if (fs::exists(path / "meta.h5")) {
    LETHE_CHECK_INPUT(fs::exists(path / "COMPLETE"), "{}: checkpoint is incomplete (no COMPLETE marker)",
                      path.string());
    return path;
  }
  for (const fs::path& root : {path, path / "checkpoints"})
    if (fs::exists(root / "latest")) {
      const auto found = find_latest_checkpoint(root);
      LETHE_CHECK_INPUT(found.has_value(), "{}: no complete checkpoint", root.string());
      return found;
    }
  return std::nullopt;
}

model::GptNeo load_checkpoint_model(const fs::path& dir, torch::ScalarType dtype) {
  const fs::path meta_path = dir / "meta.h5";
  const H5File meta = H5File::open(meta_path);
  model::GptNeoConfig arch = architecture_from_json(meta.read_string("architecture"), meta_path);
  // /architecture has no special-token ids: they come from the run's model (its config.json when the run
  // started from an HF folder that still exists, else the resolved model section).
  try {
    const YAML::Node m = YAML::Load(meta.read_string("config"))["model"];
    const std::string path = m["path"].as<std::string>("");
    if (!path.empty() && fs::exists(fs::path(path) / "config.json")) {
      const model::GptNeoConfig hf = model::read_hf_config(fs::path(path) / "config.json");
      arch.bos_token_id = hf.bos_token_id;
      arch.eos_token_id = hf.eos_token_id;
    } else {
      arch.bos_token_id = m["bos_token_id"].as<int64_t>(arch.bos_token_id);
      arch.eos_token_id = m["eos_token_id"].as<int64_t>(arch.eos_token_id);
    }
  } catch (const YAML::Exception& e) {
    throw_input("{}: /config is not the resolved YAML of a lethe run: {}", meta_path.string(), e.what());
  }
  model::GptNeo m(arch);
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters()) {
    const std::string name = "model/" + p.key();
    LETHE_CHECK_INPUT(meta.exists(name), "{}: dataset {} is missing", meta_path.string(), name);
    torch::Tensor t = torch::empty(p.value().sizes(), torch::kFloat);
    meta.read_into<float>(name, t.data_ptr<float>(), static_cast<size_t>(t.numel()));
    p.value().copy_(t);
  }
  m->to(dtype);
  m->eval();
  return m;
}

std::string checkpoint_config_yaml(const fs::path& dir) {
  return H5File::open(dir / "meta.h5").read_string("config");
}

}  // namespace lethe::io
