#include "model/hf_checkpoint.h"

#include <cstring>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/utils.h>

#include "core/error.h"
#include "core/progress.h"
#include "model/hf_config.h"
#include "model/safetensors.h"

namespace lethe::model {
namespace fs = std::filesystem;
namespace {

torch::ScalarType to_torch(DType d, const fs::path& file, const std::string& name) {
  switch (d) {
    case DType::kF32:
      return torch::kFloat;
    case DType::kF16:
      return torch::kHalf;
    case DType::kBF16:
      return torch::kBFloat16;
    default:
      throw_input("{}: tensor '{}' has dtype {}; model weights must be F32, F16 or BF16", file.string(), name,
                  dtype_name(d));
  }
}

// Tensors HF checkpoints may carry that are not parameters: the tied head and the causal-mask buffers that
// transformers < 4.31 saved.
bool ignorable(const std::string& name) {
  return name == "lm_head.weight" || name.ends_with(".attn.attention.bias") ||
         name.ends_with(".attn.attention.masked_bias");
}

}  // namespace

GptNeo load_hf_model(const fs::path& dir, torch::ScalarType dtype, torch::Device device) {
  const fs::path config_file = dir / "config.json";
  LETHE_CHECK_INPUT(
      fs::is_regular_file(config_file),
      "{}: no config.json; expected a Hugging Face model folder (config.json + model.safetensors)",
      dir.string());
  GptNeoConfig cfg = read_hf_config(config_file);
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);

  // Built in place on the device and dtype, then each tensor copied in (copy_ converts): never two
  // full-size copies of the weights.
  GptNeo model(cfg, device, dtype);
  torch::NoGradGuard no_grad;
  std::set<std::string> wanted;
  int64_t total_mb = 0;
  for (const auto& p : model->named_parameters()) {
    const TensorView* view = ckpt.find(p.key());
    total_mb += view ? static_cast<int64_t>(view->nbytes >> 20) : 0;
  }
  Progress progress("loading " + dir.string(), total_mb, "MB");  // multi-GB folders take a while
  for (auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    wanted.insert(name);
    const TensorView* view = ckpt.find(name);
    LETHE_CHECK_INPUT(view != nullptr, "{}: tensor '{}' is missing; a GPT-Neo with this config.json needs it",
                      dir.string(), name);
    std::vector<int64_t> expected = p.value().sizes().vec();
    LETHE_CHECK_INPUT(view->shape == expected, "{}: tensor '{}' has shape [{}], config.json implies [{}]",
                      ckpt.file_of(name).string(), name, fmt::join(view->shape, ", "),
                      fmt::join(expected, ", "));
    torch::ScalarType src = to_torch(view->dtype, ckpt.file_of(name), name);
    // The mapped bytes need not be aligned to the element size: copy them into an owned tensor first.
    torch::Tensor host = torch::empty(expected, torch::TensorOptions().dtype(src));
    std::memcpy(host.data_ptr(), view->data, view->nbytes);
    p.value().copy_(host);
    progress.add(static_cast<int64_t>(view->nbytes >> 20));
  }
  for (const std::string& name : ckpt.names())
    LETHE_CHECK_INPUT(
        wanted.count(name) || ignorable(name),
        "{}: unexpected tensor '{}'; this is not a GPTNeoForCausalLM checkpoint (or its config.json "
        "does not match the weights)",
        ckpt.file_of(name).string(), name);
  return model;
}

void save_hf_model(GptNeo& model, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<torch::Tensor> keep_alive;
  std::vector<TensorRef> refs;
  for (auto& p : model->named_parameters()) {
    torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep_alive.push_back(t);
    refs.push_back({p.key(), DType::kF32, t.sizes().vec(), t.data_ptr(), t.nbytes()});
  }
  // Weights first: a folder whose config.json exists but whose weights are stale would load silently wrong.
  write_safetensors(dir / "model.safetensors", refs);
  write_hf_config(dir / "config.json", model->config());
}

bool copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  const std::vector<std::pair<std::string, std::string>> names = {{"vocab.json", "vocab.json"},
                                                                  {"merges.txt", "merges.txt"},
                                                                  {"tokenizer.json", "tokenizer.json"},
                                                                  {"encoder.json", "vocab.json"},
                                                                  {"vocab.bpe", "merges.txt"}};
  bool any = false;
  fs::create_directories(to);
  for (const auto& [src, dst] : names) {
    if (!fs::is_regular_file(from / src)) continue;
    fs::copy_file(from / src, to / dst, fs::copy_options::overwrite_existing);
    // The source may be read-only (shared data); the copy belongs to the model folder's owner.
    fs::permissions(to / dst, fs::perms::owner_write, fs::perm_options::add);
    any = true;
  }
  return any;
}

}  // namespace lethe::model
