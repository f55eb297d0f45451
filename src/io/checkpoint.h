// Training checkpoints in HDF5: atomic, checksummed, and resumable on any number of ranks.
//
// Layout of <run>/checkpoints/ (README "Checkpoints" documents it for users):
//   step-00000012/
//     meta.h5            rank 0: attributes format/format_version/step/epoch/batch/world_size/zero_stage/
//                        adam_steps, loss_scale + loss_scale_finite_steps (fp16 runs), num_samples,
//                        global_batch; /config (resolved YAML), /architecture (JSON: the model's HF
//                        config.json object without dtype; in older checkpoints GPT-Neo's fields only),
//                        /layout/{names,ndims,dims} (the FlatLayout: tensor order, shapes), /rng/torch_cpu,
//                        /rng/torch_cuda (GPU runs), /model/<HF name> (fp32 weights), /method/<name>
//                        (free-form state of the training method)
//     optim-00000.h5 …   one per rank r: attributes begin/end = FlatLayout slice r of the *global* flat
//                        range; datasets master, exp_avg, exp_avg_sq (fp32, end - begin elements)
//     COMPLETE           JSON {step, world_size, files: {name: bytes}}, written last
//   latest               text: the newest complete folder's name
// Every dataset carries an XXH3 checksum. A save writes into .tmp-step-…, fsyncs every file, agrees across
// ranks that all writes succeeded, writes COMPLETE, renames the folder into place, fsyncs the parent, then
// updates `latest` and deletes all but the newest keep_last. A job killed at any moment leaves the previous
// checkpoint untouched; half-written folders are never chosen and are removed by the next save.
//
// Resuming under another world size: optimizer state is stored per rank *as a slice of the global flat
// buffer*, and the layout (tensor order and shapes) is stored with it, so each new rank reads exactly the
// old slices that overlap its new slice — no conversion step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "comm/communicator.h"
#include "data/sampler.h"
#include "model/model_config.h"
#include "zero/engine.h"

namespace lethe::io {

inline constexpr int64_t kCheckpointFormatVersion = 1;

struct TrainProgress {
  int64_t step = 0;  // optimizer steps completed
  data::SamplerState sampler;
  int64_t num_samples = 0, global_batch = 0;  // what the sampler cursor counts in
};

struct CheckpointContent {
  TrainProgress progress;
  std::string config_yaml;
  model::ModelConfig architecture;
  std::map<std::string, torch::Tensor> method;  // saved under /method (float32 or int64 tensors)
};

struct SaveReport {
  std::filesystem::path dir;
  int64_t bytes = 0;  // written by this rank
  double seconds = 0;
};

// Collective over `host` (the engine's own communicator may be NCCL, which carries no control flow):
// every rank calls it. Throws std::runtime_error (on every rank) if any rank failed to write. Device state is
// copied to the host piece by piece.
SaveReport save_checkpoint(const std::filesystem::path& root, const CheckpointContent& content,
                           const zero::ZeroEngine& engine, int64_t keep_last, comm::Communicator& host);

// The newest complete checkpoint under root, or nullopt.
std::optional<std::filesystem::path> find_latest_checkpoint(const std::filesystem::path& root);

struct LoadReport {
  CheckpointContent content;
  int64_t saved_world_size = 0;
  int64_t bytes = 0;  // read by this rank
  double seconds = 0;
};

// Collective. Verifies completeness, sizes and checksums, checks that the checkpoint's architecture and
// layout match `engine` (InputError naming the difference otherwise), fills the engine's owned optimizer
// state from the overlapping old slices, and refreshes the parameters from it. `architecture` is the current
// run's. Corruption is an InputError naming the file and dataset.
LoadReport load_checkpoint(const std::filesystem::path& dir, zero::ZeroEngine& engine,
                           const model::ModelConfig& architecture);

// Architecture as JSON text (stored in meta.h5; compared on resume): the HF config.json object, dtype left
// out (a property of the tensors, not of the architecture).
std::string architecture_json(const model::ModelConfig& a);
// The architecture stored in `file` (meta.h5): that JSON, or the GPT-Neo-only object of older checkpoints,
// whose special-token ids default to GPT-2's. InputError naming the file and field when malformed.
model::ModelConfig architecture_from_json(const std::string& text, const std::filesystem::path& file);

}  // namespace lethe::io
