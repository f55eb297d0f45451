#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <regex>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "io/hdf5.h"
#include "lethe/version.h"
#include "model/hf_config.h"

namespace lethe::io {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string step_name(int64_t step) {
  return fmt::format("step-{:08d}", step);
}
std::string shard_name(int rank) {
  return fmt::format("optim-{:05d}.h5", rank);
}

void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error(os_error_message("cannot open for fsync", p));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error(os_error_message("fsync failed for", p));
}

// Every rank learns whether any rank failed; the failing rank's own message is thrown there, the others
// name the rank. Nobody is left waiting in a collective.
void agree(comm::Communicator& comm, const std::string& error, const char* what) {
  const int64_t failed = comm.all_reduce_int(error.empty() ? -1 : comm.rank(), comm::ReduceOp::kMax);
  if (!error.empty()) throw std::runtime_error(error);
  if (failed >= 0)
    throw std::runtime_error(fmt::format("{} failed on rank {} (see its message)", what, failed));
}

template <class F>
std::string capture(F&& f) {
  try {
    f();
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::vector<hsize_t> dims_of(const torch::Tensor& t) {
  std::vector<hsize_t> d;
  for (int64_t x : t.sizes()) d.push_back(static_cast<hsize_t>(x));
  return d;
}

void write_meta(const fs::path& file, const CheckpointContent& c, const zero::ZeroEngine& engine) {
  const zero::FlatLayout& layout = engine.layout();
  H5File f = H5File::create(file);
  f.set_attr("format", std::string("lethe-checkpoint"));
  f.set_attr("format_version", kCheckpointFormatVersion);
  f.set_attr("lethe_version", std::string(LETHE_VERSION));
  f.set_attr("step", c.progress.step);
  f.set_attr("epoch", c.progress.sampler.epoch);
  f.set_attr("batch", c.progress.sampler.batch);
  f.set_attr("num_samples", c.progress.num_samples);
  f.set_attr("global_batch", c.progress.global_batch);
  f.set_attr("world_size", static_cast<int64_t>(layout.world_size()));
  f.set_attr("zero_stage", static_cast<int64_t>(engine.options().stage));
  f.set_attr("padded_numel", layout.padded_numel());
  f.set_attr("adam_steps", engine.adam_steps());
  if (engine.options().loss_scaling.enabled) {  // fp16 runs only: another run's scale means nothing
    f.set_attr("loss_scale", engine.loss_scale());
    f.set_attr("loss_scale_finite_steps", engine.finite_steps());
  }
  f.write_string("config", c.config_yaml);
  f.write_string("architecture", architecture_json(c.architecture));
  f.group("layout", true);
  std::string names;
  std::vector<int64_t> ndims, dims;
  for (const auto& t : layout.tensors()) {
    names += t.name + "\n";
    ndims.push_back(static_cast<int64_t>(t.shape.size()));
    dims.insert(dims.end(), t.shape.begin(), t.shape.end());
  }
  f.write_string("layout/names", names);
  f.write<int64_t>("layout/ndims", ndims.data(), {ndims.size()});
  f.write<int64_t>("layout/dims", dims.data(), {dims.size()});
  f.group("rng", true);
  torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  f.write<uint8_t>("rng/torch_cpu", rng.data_ptr<uint8_t>(), {static_cast<hsize_t>(rng.numel())});
  if (const torch::Device d = engine.flat_parameters().device(); d.is_cuda()) {
    // The generator of this rank's GPU (rank 0's: every rank seeds the same way).
    torch::Tensor cuda = at::globalContext().defaultGenerator(d).get_state();
    f.write<uint8_t>("rng/torch_cuda", cuda.data_ptr<uint8_t>(), {static_cast<hsize_t>(cuda.numel())});
  }
  f.group("model", true);
  const torch::Tensor flat = engine.flat_parameters().to(torch::kCPU, torch::kFloat).contiguous();
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const auto& t = layout.tensors()[i];
    std::vector<hsize_t> d(t.shape.begin(), t.shape.end());
    f.write<float>("model/" + t.name, flat.data_ptr<float>() + layout.offset(i), d);
  }
  f.group("method", true);
  for (const auto& [name, t] : c.method) {
    const torch::Tensor v = t.contiguous().cpu();
    if (v.scalar_type() == torch::kLong)
      f.write<int64_t>("method/" + name, v.data_ptr<int64_t>(), dims_of(v));
    else
      f.write<float>("method/" + name, v.to(torch::kFloat).contiguous().data_ptr<float>(), dims_of(v));
  }
  f.close();
}

// This rank's slice of the global optimizer state (for stage 0 a sub-range of the replicated state).
void write_shard(const fs::path& file, const zero::ZeroEngine& engine, int rank) {
  const zero::FlatLayout& layout = engine.layout();
  const zero::Span s = layout.slice(rank);
  const zero::Span owned = engine.owned();
  H5File f = H5File::create(file);
  f.set_attr("rank", static_cast<int64_t>(rank));
  f.set_attr("world_size", static_cast<int64_t>(layout.world_size()));
  f.set_attr("begin", s.begin);
  f.set_attr("end", s.end);
  const std::pair<const char*, const torch::Tensor*> states[] = {
      {"master", &engine.master()}, {"exp_avg", &engine.exp_avg()}, {"exp_avg_sq", &engine.exp_avg_sq()}};
  for (const auto& [name, t] : states) {
    const torch::Tensor part = t->narrow(0, s.begin - owned.begin, s.size()).cpu().contiguous();
    f.write<float>(name, part.data_ptr<float>(), {static_cast<hsize_t>(s.size())});
  }
  f.close();
}

int64_t step_of(const fs::path& dir) {
  static const std::regex re(R"(step-(\d{8}))");
  std::smatch m;
  const std::string name = dir.filename().string();
  return std::regex_match(name, m, re) ? std::stoll(m[1]) : -1;
}

std::vector<fs::path> complete_checkpoints(const fs::path& root) {
  std::vector<fs::path> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && step_of(e.path()) >= 0 && fs::exists(e.path() / "COMPLETE"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end(),
            [](const fs::path& a, const fs::path& b) { return step_of(a) < step_of(b); });
  return out;
}

}  // namespace

std::string architecture_json(const model::ModelConfig& a) {
  nlohmann::json j = nlohmann::json::parse(model::hf_config_text(a));
  j.erase("dtype");
  j.erase("torch_dtype");
  return j.dump();
}

model::ModelConfig architecture_from_json(const std::string& text, const fs::path& file) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: /architecture is not a JSON object",
                    file.string());
  if (j.contains("model_type")) return model::parse_hf_config(text, file.string() + ":/architecture");
  model::GptNeoConfig a;  // older checkpoints: GPT-Neo's fields, no special tokens
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

SaveReport save_checkpoint(const fs::path& root, const CheckpointContent& content,
                           const zero::ZeroEngine& engine, int64_t keep_last, comm::Communicator& comm) {
  const auto t0 = Clock::now();
  const std::string name = step_name(content.progress.step);
  const fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  std::string error = comm.rank() != 0 ? "" : capture([&] {
    fs::create_directories(root);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  });
  agree(comm, error, "creating the checkpoint folder");

  SaveReport report{final_dir};
  error = capture([&] {
    if (comm.rank() == 0) {
      write_meta(tmp / "meta.h5", content, engine);
      fsync_path(tmp / "meta.h5");
      report.bytes += static_cast<int64_t>(fs::file_size(tmp / "meta.h5"));
    }
    write_shard(tmp / shard_name(comm.rank()), engine, comm.rank());
    fsync_path(tmp / shard_name(comm.rank()));
    report.bytes += static_cast<int64_t>(fs::file_size(tmp / shard_name(comm.rank())));
  });
  agree(comm, error, "writing the checkpoint");

  if (comm.rank() == 0) {
    error = capture([&] {
      nlohmann::json files = nlohmann::json::object();
      for (const auto& e : fs::directory_iterator(tmp))
        files[e.path().filename().string()] = fs::file_size(e.path());
      const std::string marker =
          nlohmann::json{{"step", content.progress.step}, {"world_size", comm.size()}, {"files", files}}.dump(
              1);
      write_file_atomic(tmp / "COMPLETE", {std::as_bytes(std::span(marker.data(), marker.size()))});
      fs::remove_all(final_dir);  // a checkpoint of the same step from an earlier, interrupted attempt
      fs::rename(tmp, final_dir);
      fsync_path(root);
      write_file_atomic(root / "latest", {std::as_bytes(std::span(name.data(), name.size()))});
      // Keep the newest keep_last; drop half-written folders of killed saves.
      std::vector<fs::path> done = complete_checkpoints(root);
      for (size_t i = 0; i + static_cast<size_t>(keep_last) < done.size(); ++i) fs::remove_all(done[i]);
      for (const auto& e : fs::directory_iterator(root))
        if (e.is_directory() && e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
    });
  }
  agree(comm, error, "committing the checkpoint");
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return report;
}

std::optional<fs::path> find_latest_checkpoint(const fs::path& root) {
  std::error_code ec;
  if (fs::exists(root / "latest", ec)) {
    std::string name = read_text_file(root / "latest", "the name of the newest checkpoint");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const fs::path dir = root / name;
    if (step_of(dir) >= 0 && fs::exists(dir / "COMPLETE")) {
      // `latest` is written after the rename, so a newer complete folder can exist only if the job died in
      // between: prefer whichever is newer.
      const auto all = complete_checkpoints(root);
      return all.empty() || step_of(all.back()) <= step_of(dir) ? dir : all.back();
    }
  }
  const auto all = complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back();
}

}  // namespace lethe::io
