// Reading a checkpoint back (the layout is described in checkpoint.h): verification first, then each rank
// fills its owned optimizer range from whichever old slices overlap it.
#include <algorithm>
#include <chrono>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"

namespace lethe::io {
namespace fs = std::filesystem;

namespace {

constexpr const char* kHint = "resume from an older checkpoint with --resume PATH, or start fresh";

// Every file COMPLETE lists exists with the recorded size: catches truncation before HDF5 sees the file.
void check_files(const fs::path& dir) {
  LETHE_CHECK_INPUT(fs::exists(dir / "COMPLETE"),
                    "checkpoint {}: no COMPLETE marker, so it was never finished; {}", dir.string(), kHint);
  nlohmann::json marker;
  try {
    marker = nlohmann::json::parse(read_text_file(dir / "COMPLETE", "a checkpoint completion marker"));
  } catch (const nlohmann::json::exception& e) {
    throw_input("checkpoint {}: COMPLETE is not valid JSON ({}); {}", dir.string(), e.what(), kHint);
  }
  LETHE_CHECK_INPUT(marker.contains("files") && marker["files"].is_object(),
                    "checkpoint {}: COMPLETE has no 'files' table; {}", dir.string(), kHint);
  for (const auto& [name, bytes] : marker["files"].items()) {
    const fs::path f = dir / name;
    LETHE_CHECK_INPUT(fs::exists(f), "checkpoint {}: file {} is missing; {}", dir.string(), name, kHint);
    LETHE_CHECK_INPUT(bytes.is_number_unsigned() && fs::file_size(f) == bytes.get<uint64_t>(),
                      "checkpoint {}: file {} is {} bytes but was written with {} (truncated?); {}",
                      dir.string(), name, fs::file_size(f), bytes.dump(), kHint);
  }
}

zero::FlatLayout read_layout(const H5File& f, int64_t world_size) {
  const std::string names = f.read_string("layout/names");
  const std::vector<int64_t> ndims = f.read<int64_t>("layout/ndims"), dims = f.read<int64_t>("layout/dims");
  std::vector<zero::TensorSpec> specs;
  size_t pos = 0, d = 0;
  for (int64_t nd : ndims) {
    const size_t end = names.find('\n', pos);
    if (end == std::string::npos || nd < 0 || static_cast<size_t>(nd) > dims.size() - d)
      throw std::runtime_error(f.path().string() + ": layout datasets disagree with each other");
    specs.push_back({names.substr(pos, end - pos), {dims.begin() + d, dims.begin() + d + nd}});
    pos = end + 1;
    d += nd;
  }
  return zero::FlatLayout(std::move(specs), static_cast<int>(world_size));
}

// Field-by-field differences between two architecture JSON texts.
std::string architecture_difference(const std::string& saved, const std::string& current) {
  const auto a = nlohmann::json::parse(saved), b = nlohmann::json::parse(current);
  std::string out;
  for (const auto& [k, v] : b.items())
    if (!a.contains(k) || a[k] != v)
      out += fmt::format("{}{} = {} in the checkpoint but {} now", out.empty() ? "" : "; ", k,
                         a.contains(k) ? a[k].dump() : "(absent)", v.dump());
  return out;
}

}  // namespace

LoadReport load_checkpoint(const fs::path& dir, zero::ZeroEngine& engine,
                           const model::ModelConfig& architecture) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadReport report;
  try {
    check_files(dir);
    const H5File meta = H5File::open(dir / "meta.h5");
    LETHE_CHECK_INPUT(meta.attr_string("format") == "lethe-checkpoint",
                      "checkpoint {}: meta.h5 is not a lethe checkpoint", dir.string());
    const int64_t version = meta.attr_int("format_version");
    LETHE_CHECK_INPUT(version == kCheckpointFormatVersion,
                      "checkpoint {}: format version {} is not supported by this lethe (reads version {})",
                      dir.string(), version, kCheckpointFormatVersion);
    const std::string saved_arch = meta.read_string("architecture");
    const std::string diff =
        architecture_difference(architecture_json(architecture_from_json(saved_arch, dir / "meta.h5")),
                                architecture_json(architecture));
    LETHE_CHECK_INPUT(
        diff.empty(),
        "checkpoint {} was written for a different model: {}. Resume with the checkpoint's model "
        "config (its resolved config is stored in meta.h5:/config) or start a new run",
        dir.string(), diff);
    report.saved_world_size = meta.attr_int("world_size");
    const zero::FlatLayout saved = read_layout(meta, report.saved_world_size);
    const std::string layout_diff = saved.difference(engine.layout());
    LETHE_CHECK_INPUT(layout_diff.empty(), "checkpoint {} does not fit this model: {}", dir.string(),
                      layout_diff);
    LETHE_CHECK_INPUT(meta.attr_int("padded_numel") == saved.padded_numel(),
                      "checkpoint {}: meta.h5 padded_numel disagrees with its layout", dir.string());

    CheckpointContent& c = report.content;
    c.progress.step = meta.attr_int("step");
    c.progress.sampler = {meta.attr_int("epoch"), meta.attr_int("batch")};
    c.progress.num_samples = meta.attr_int("num_samples");
    c.progress.global_batch = meta.attr_int("global_batch");
    c.config_yaml = meta.read_string("config");
    c.architecture = architecture;
    for (const std::string& name : meta.children("method")) {
      std::vector<hsize_t> d;
      const std::string path = "method/" + name;
      std::vector<int64_t> shape;
      H5Handle dset(H5Dopen2(meta.id(), path.c_str(), H5P_DEFAULT), H5Dclose);
      H5Handle type(H5Dget_type(dset), H5Tclose);
      if (H5Tget_class(type) == H5T_INTEGER) {
        auto v = meta.read<int64_t>(path, &d);
        shape.assign(d.begin(), d.end());
        c.method[name] = torch::tensor(v, torch::kLong).view(shape);
      } else {
        auto v = meta.read<float>(path, &d);
        shape.assign(d.begin(), d.end());
        c.method[name] = torch::tensor(v, torch::kFloat).view(shape);
      }
    }
    const std::vector<uint8_t> rng = meta.read<uint8_t>("rng/torch_cpu");
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(torch::tensor(rng, torch::kByte));
    if (const torch::Device d = engine.flat_parameters().device();
        d.is_cuda() && meta.exists("rng/torch_cuda")) {
      const std::vector<uint8_t> cuda = meta.read<uint8_t>("rng/torch_cuda");
      at::Generator cuda_gen = at::globalContext().defaultGenerator(d);
      cuda_gen.set_state(torch::tensor(cuda, torch::kByte));
    }
    engine.set_adam_steps(meta.attr_int("adam_steps"));
    // Loss scaling state; checkpoints from before it existed hold none (and ran without it).
    if (meta.has_attr("loss_scale") && engine.options().loss_scaling.enabled) {
      const double scale = meta.attr_double("loss_scale");
      const int64_t finite = meta.attr_int("loss_scale_finite_steps");
      LETHE_CHECK_INPUT(std::isfinite(scale) && scale >= 1 && finite >= 0,
                        "checkpoint {}: meta.h5 loss_scale {} / loss_scale_finite_steps {}: expected a scale "
                        ">= 1 and a count >= 0",
                        dir.string(), scale, finite);
      engine.set_loss_scale(scale, finite);
    }

    // Owned range of the new layout, filled from every old slice that overlaps its real (unpadded) part.
    const zero::Span owned = engine.owned();
    const zero::Span real = owned.intersect({0, saved.numel()});
    torch::Tensor* states[] = {&engine.master(), &engine.exp_avg(), &engine.exp_avg_sq()};
    // The old slices cover every real element; only this rank's padding (past Ψ) needs zeros.
    const zero::Span pad{std::max(owned.begin, saved.numel()), owned.end};
    for (torch::Tensor* t : states)
      if (pad.size() > 0) t->narrow(0, pad.begin - owned.begin, pad.size()).zero_();
    for (int r = 0; r < saved.world_size(); ++r) {
      const zero::Span old = saved.slice(r), x = old.intersect(real);
      if (x.size() == 0) continue;
      const H5File shard = H5File::open(dir / fmt::format("optim-{:05d}.h5", r));
      LETHE_CHECK_INPUT(shard.attr_int("begin") == old.begin && shard.attr_int("end") == old.end,
                        "checkpoint {}: {} covers [{}, {}) but the layout says [{}, {})", dir.string(),
                        shard.path().filename().string(), shard.attr_int("begin"), shard.attr_int("end"),
                        old.begin, old.end);
      const char* names[] = {"master", "exp_avg", "exp_avg_sq"};
      for (int k = 0; k < 3; ++k) {
        const std::vector<hsize_t> d = shard.dims(names[k]);
        LETHE_CHECK_INPUT(d.size() == 1 && static_cast<int64_t>(d[0]) == old.size(),
                          "checkpoint {}: {}:/{} has {} elements, expected {}", dir.string(),
                          shard.path().filename().string(), names[k], d.empty() ? 0 : d[0], old.size());
        // The same slice as before (same world size): read straight into the state, else via a buffer.
        torch::Tensor dst = states[k]->narrow(0, x.begin - owned.begin, x.size());
        const bool whole = x == old && dst.is_cpu();
        torch::Tensor buf = whole ? dst : torch::empty({old.size()}, torch::kFloat);
        shard.read_into<float>(names[k], buf.data_ptr<float>(), static_cast<size_t>(old.size()));
        if (!whole) dst.copy_(buf.narrow(0, x.begin - old.begin, x.size()));
        report.bytes += old.size() * static_cast<int64_t>(sizeof(float));
      }
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw_input("checkpoint {} is unreadable: {}; {}", dir.string(), e.what(), kHint);
  }
  engine.sync_parameters_from_master();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace lethe::io
