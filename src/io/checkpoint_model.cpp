#include "io/checkpoint_model.h"

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"

namespace lethe::io {
namespace fs = std::filesystem;

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

model::CausalLm load_checkpoint_model(const fs::path& dir, torch::ScalarType dtype) {
  const fs::path meta_path = dir / "meta.h5";
  const H5File meta = H5File::open(meta_path);
  model::ModelConfig arch = architecture_from_json(meta.read_string("architecture"), meta_path);
  model::CausalLm m = model::make_causal_lm(arch);
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

fs::path checkpoint_tokenizer_dir(const fs::path& dir) {
  const fs::path meta = dir / "meta.h5";
  try {
    const YAML::Node cfg = YAML::Load(checkpoint_config_yaml(dir));
    const std::string tokenizer = cfg["tokenizer"]["path"].as<std::string>("");
    return tokenizer.empty() ? fs::path(cfg["model"]["path"].as<std::string>("")) : fs::path(tokenizer);
  } catch (const YAML::Exception& e) {
    throw_input("{}: /config is not the resolved YAML of a lethe run: {}", meta.string(), e.what());
  }
}

}  // namespace lethe::io
