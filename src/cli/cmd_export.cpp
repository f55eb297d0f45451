// `lethe export --checkpoint PATH --out DIR`: a training or unlearning checkpoint, saved by any number of
// ranks at any ZeRO stage, as a Hugging Face folder (weights, config.json, the run's tokenizer files) that
// `from_pretrained` loads. The weights come from meta.h5 (full fp32 copies); optimizer state is not read.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"
#include "io/checkpoint_model.h"
#include "model/hf_checkpoint.h"

namespace lethe::cli {

int run_export(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::string checkpoint, out, dtype = "float32", shard_size, tokenizer;
  bool force = false;
  po::options_description desc;
  desc.add_options()("checkpoint,c", po::value(&checkpoint)->required(),
                     "a checkpoint folder (step-…), a run's checkpoints/ folder, or a run folder (its latest "
                     "complete checkpoint)")("out,o", po::value(&out)->required(), "folder to write")(
      "dtype", po::value(&dtype), "dtype of the written tensors: float32 (default) | bfloat16 | float16")(
      "max-shard-size", po::value(&shard_size),
      "split the weights into shards of at most this size (2GB, 500MB, 4GiB) with an index, as "
      "save_pretrained does; default: one model.safetensors")(
      "tokenizer,t", po::value(&tokenizer),
      "copy this folder's tokenizer files; default: the run's tokenizer.path, else its model.path")(
      "force", po::bool_switch(&force), "write into a folder that already holds a model");
  if (!parse(argc, argv, desc,
             "lethe export --checkpoint PATH --out DIR [--dtype bfloat16] [--max-shard-size 2GB] "
             "[--tokenizer DIR]",
             "Turns a lethe checkpoint (any rank count, any ZeRO stage) into a Hugging Face folder: "
             "config.json, model.safetensors (or shards + model.safetensors.index.json) and the tokenizer "
             "files. The run's final/ folder is written by the same code."))
    return 0;
  LETHE_CHECK_INPUT(dtype == "float32" || dtype == "bfloat16" || dtype == "float16",
                    "--dtype {}: expected float32, bfloat16 or float16", dtype);
  const std::optional<fs::path> ckpt = io::checkpoint_folder(checkpoint);
  LETHE_CHECK_INPUT(ckpt.has_value(),
                    "--checkpoint {}: not a lethe checkpoint (a step-… folder with meta.h5 and COMPLETE), "
                    "checkpoints/ folder or run folder",
                    checkpoint);
  const fs::path dir(out);
  LETHE_CHECK_INPUT(!fs::exists(dir) || fs::is_directory(dir), "--out {}: exists and is not a folder", out);
  for (const char* f : {"model.safetensors", "model.safetensors.index.json", "config.json"})
    LETHE_CHECK_INPUT(force || !fs::exists(dir / f),
                      "--out {}: already holds a model ({}); pass --force to replace it", out, f);
  model::SaveOptions o;
  o.dtype = dtype == "bfloat16" ? torch::kBFloat16 : dtype == "float16" ? torch::kHalf : torch::kFloat;
  if (!shard_size.empty()) o.max_shard_bytes = model::parse_shard_size(shard_size);
  o.tokenizer_from = tokenizer.empty() ? io::checkpoint_tokenizer_dir(*ckpt) : fs::path(tokenizer);
  LETHE_CHECK_INPUT(tokenizer.empty() || fs::is_directory(o.tokenizer_from), "--tokenizer {}: not a folder",
                    tokenizer);

  model::CausalLm m = io::load_checkpoint_model(*ckpt, torch::kFloat);
  model::save_hf_model(m, dir, o);
  const bool has_tokenizer = fs::exists(dir / "tokenizer.json") || fs::exists(dir / "vocab.json");
  spdlog::info("exported {} ({}, {} parameters, {}) to {}{}", ckpt->string(), m->config().model_type(),
               m->config().parameter_count(), dtype, out,
               has_tokenizer ? "" : " without tokenizer files (the run named none; pass --tokenizer DIR)");
  return 0;
}

}  // namespace lethe::cli
