#include "model/hf_checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/utils.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
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

}  // namespace

CausalLm load_hf_model(const fs::path& dir, torch::ScalarType dtype, torch::Device device) {
  const fs::path config_file = dir / "config.json";
  LETHE_CHECK_INPUT(
      fs::is_regular_file(config_file),
      "{}: no config.json; expected a Hugging Face model folder (config.json + model.safetensors)",
      dir.string());
  const ModelConfig cfg = read_hf_config(config_file);
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);

  // Built in place on the device and dtype, then each tensor copied in (copy_ converts): never two
  // full-size copies of the weights.
  CausalLm model = make_causal_lm(cfg, device, dtype);
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
    LETHE_CHECK_INPUT(view != nullptr,
                      "{}: tensor '{}' is missing; a {} model with this config.json needs it", dir.string(),
                      name, cfg.model_type());
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
    LETHE_CHECK_INPUT(wanted.count(name) || model->ignorable_tensor(name),
                      "{}: unexpected tensor '{}'; config.json says model_type '{}', and such a model has no "
                      "tensor of that "
                      "name (or config.json does not match the weights)",
                      ckpt.file_of(name).string(), name, cfg.model_type());
  return model;
}

namespace {

// Parameters in model order, grouped greedily into shards of at most max_bytes (a tensor larger than that
// is a shard of its own), as huggingface_hub's split_torch_state_dict_into_shards does. One group when
// max_bytes is 0.
std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shard(CausalLm& model, int64_t element_bytes,
                                                                      int64_t max_bytes) {
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  int64_t filled = 0;
  for (auto& p : model->named_parameters()) {
    const int64_t bytes = p.value().numel() * element_bytes;
    if (max_bytes > 0 && filled > 0 && filled + bytes > max_bytes) {
      shards.emplace_back();
      filled = 0;
    }
    shards.back().emplace_back(p.key(), p.value());
    filled += bytes;
  }
  return shards;
}

// Writes the weights and config.json into `dir` (which exists and is empty).
void write_folder(CausalLm& model, const fs::path& dir, const SaveOptions& o) {
  const DType dtype = o.dtype == torch::kBFloat16 ? DType::kBF16
                      : o.dtype == torch::kHalf   ? DType::kF16
                                                  : DType::kF32;
  const int64_t element_bytes = o.dtype == torch::kFloat ? 4 : 2;
  const auto shards = shard(model, element_bytes, o.max_shard_bytes);
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = shards.size() == 1
                                 ? "model.safetensors"
                                 : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    // One shard's host copies at a time: a 7B model never sits on the host twice.
    std::vector<torch::Tensor> keep_alive;
    std::vector<TensorRef> refs;
    for (const auto& [name, value] : shards[i]) {
      torch::Tensor t = value.detach().to(torch::kCPU, o.dtype).contiguous();
      keep_alive.push_back(t);
      refs.push_back({name, dtype, t.sizes().vec(), t.data_ptr(), t.nbytes()});
      weight_map[name] = file;
      total += static_cast<int64_t>(t.nbytes());
    }
    write_safetensors(dir / file, refs);
  }
  if (shards.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    write_file_atomic(dir / "model.safetensors.index.json", {std::as_bytes(std::span(text))});
  }
  write_hf_config(dir / "config.json", model->config(),
                  o.dtype == torch::kFloat      ? "float32"
                  : o.dtype == torch::kBFloat16 ? "bfloat16"
                                                : "float16");
  if (!o.tokenizer_from.empty()) copy_tokenizer_files(o.tokenizer_from, dir);
}

}  // namespace

void save_hf_model(CausalLm& model, const fs::path& dir, const SaveOptions& o) {
  // Written into a folder beside `dir`, then moved in: the old weight files (a single model.safetensors, or
  // shards and their index) go first, so `dir` never mixes old and new weights (transformers would prefer a
  // stale model.safetensors over a new index). Other files in `dir` stay.
  const fs::path target = fs::absolute(dir).lexically_normal();
  const fs::path tmp =
      target.parent_path() / fmt::format(".tmp-{}-{}", target.filename().string(), ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_folder(model, tmp, o);
    fs::create_directories(target);
    for (const auto& e : fs::directory_iterator(target)) {
      const std::string name = e.path().filename().string();
      if (name == "model.safetensors.index.json" ||
          (name.starts_with("model") && name.ends_with(".safetensors")))
        fs::remove(e.path());
    }
    for (const auto& e : fs::directory_iterator(tmp)) fs::rename(e.path(), target / e.path().filename());
    fs::remove(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

int64_t parse_shard_size(const std::string& text) {
  // transformers' convert_file_size_to_int: GB/MB/KB are powers of 10, GiB/MiB/KiB powers of 2.
  static const std::vector<std::pair<std::string, int64_t>> units = {{"GiB", int64_t{1} << 30},
                                                                     {"MiB", int64_t{1} << 20},
                                                                     {"KiB", int64_t{1} << 10},
                                                                     {"GB", 1'000'000'000},
                                                                     {"MB", 1'000'000},
                                                                     {"KB", 1'000},
                                                                     {"B", 1}};
  for (const auto& [suffix, scale] : units) {
    if (!text.ends_with(suffix)) continue;
    const std::string number = text.substr(0, text.size() - suffix.size());
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == number.size() && used > 0 && value > 0)
      return static_cast<int64_t>(value * static_cast<double>(scale));
    break;
  }
  throw_input("shard size '{}': expected a positive size such as 2GB, 500MB or 4GiB", text);
}

bool copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"vocab.json", "vocab.json"},
      {"merges.txt", "merges.txt"},
      {"tokenizer.json", "tokenizer.json"},
      {"tokenizer_config.json", "tokenizer_config.json"},  // chat template, special tokens
      {"special_tokens_map.json", "special_tokens_map.json"},
      {"tokenizer.model", "tokenizer.model"},  // SentencePiece, for slow tokenizers
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
