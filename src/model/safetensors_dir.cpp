// Hugging Face checkpoint folders: a single model.safetensors or an index plus shards, and the refusal of
// pickle checkpoints (see SafetensorsCheckpoint in safetensors.h).
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "model/safetensors.h"

namespace lethe::model {
using nlohmann::json;

namespace {

std::vector<std::string> folder_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view x) { return s.ends_with(x); });
}

constexpr std::string_view kExpected =
    "model.safetensors, or model.safetensors.index.json with the model-0000i-of-0000n.safetensors shards it "
    "names";

// No safetensors weights: say what is there instead, and how to convert a pickle checkpoint.
[[noreturn]] void refuse_folder(const std::filesystem::path& dir) {
  const auto names = folder_entries(dir);
  std::vector<std::string> pickles, others;
  for (const auto& n : names) {
    if (n == "pytorch_model.bin.index.json" || ends_with_any(n, {".bin", ".pt", ".pth", ".ckpt"}))
      pickles.push_back(n);
    else if (n.ends_with(".safetensors"))
      others.push_back(n);
  }
  const std::string d = dir.string();
  if (!pickles.empty())
    throw_input(
        "{}: holds a PyTorch pickle checkpoint ({}); lethe never unpickles (it can run arbitrary code) and "
        "reads only safetensors ({}). Convert it once with:\n  python -c \"from transformers import "
        "AutoModelForCausalLM as M; M.from_pretrained('{}').save_pretrained('{}-safetensors', "
        "safe_serialization=True)\"",
        d, fmt::join(pickles, ", "), kExpected, d, d);
  if (!others.empty())
    throw_input("{}: found {} but no model.safetensors or model.safetensors.index.json; expected {}", d,
                fmt::join(others, ", "), kExpected);
  throw_input("{}: no model weights found; expected {} (folder holds: {})", d, kExpected,
              names.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(names, ", ")));
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw_input("model folder '{}' {}; expected a Hugging Face checkpoint folder with config.json and {}", d,
                std::filesystem::exists(dir, ec) ? "is not a folder" : "does not exist", kExpected);

  SafetensorsCheckpoint ckpt;
  ckpt.dir_ = dir;
  const auto single = dir / "model.safetensors";
  const auto index_path = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single, ec)) {  // transformers prefers the single file too
    ckpt.files_.push_back(SafetensorsFile::open(single));
    const auto& ts = ckpt.files_[0].tensors();
    for (size_t i = 0; i < ts.size(); ++i) ckpt.index_.emplace(ts[i].name, Location{0, i});
    return ckpt;
  }
  if (!std::filesystem::exists(index_path, ec)) refuse_folder(dir);

  const std::string ip = index_path.string();
  json index;
  try {
    index = json::parse(read_text_file(index_path, "a Hugging Face model.safetensors.index.json"));
  } catch (const json::exception& e) {
    throw_input("{}: not valid JSON ({})", ip, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw_input("{}: expected an object with a \"weight_map\" object of tensor name -> shard file", ip);

  std::map<std::string, size_t> shard_ids;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      throw_input("{}: weight_map['{}'] must be a shard file name, found {}", ip, name, describe_json(shard));
    const auto& s = shard.get_ref<const std::string&>();
    // Shards are plain names inside the folder; anything else could point outside it.
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos)
      throw_input("{}: weight_map['{}'] = '{}' is not a file name inside the folder", ip, name, s);
    auto [it, inserted] = shard_ids.emplace(s, ckpt.files_.size());
    if (inserted) {
      if (!std::filesystem::exists(dir / s, ec))
        throw_input("{}: shard '{}' (holding tensor '{}') does not exist in {}", ip, s, name, d);
      ckpt.files_.push_back(SafetensorsFile::open(dir / s));
    }
    const SafetensorsFile& f = ckpt.files_[it->second];
    const TensorView* t = f.find(name);
    if (t == nullptr)
      throw_input("{}: lists tensor '{}' in shard '{}', but that shard has no such tensor", ip, name, s);
    ckpt.index_.emplace(name, Location{it->second, static_cast<size_t>(t - f.tensors().data())});
  }
  if (ckpt.index_.empty()) throw_input("{}: weight_map is empty; expected the model's tensors", ip);
  return ckpt;
}

const TensorView* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &files_[it->second.file].tensors()[it->second.tensor];
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, loc] : index_) out.push_back(name);
  return out;
}

const std::filesystem::path& SafetensorsCheckpoint::file_of(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw_input("{}: checkpoint has no tensor '{}'", dir_.string(), name);
  return files_[it->second.file].path();
}

}  // namespace lethe::model
