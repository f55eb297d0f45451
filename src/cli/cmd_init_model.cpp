// `lethe init-model --out DIR [--config F] [--set model.preset=tiny]`: a randomly initialised GPT-Neo saved
// as a Hugging Face folder (config.json + model.safetensors, plus tokenizer files when --tokenizer is given).
// Used by the demo and for experiments that start from scratch.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"
#include "model/causal_lm.h"
#include "model/hf_checkpoint.h"
#include "model/presets.h"
#include "text/tokenizer.h"

namespace lethe::cli {

int run_init_model(int argc, char** argv) {
  ConfigOptions co;
  std::string out, tok_dir;
  bool force = false;
  std::string preset;
  po::options_description desc;
  desc.add_options()("out,o", po::value(&out)->required(), "folder to write")(
      "tokenizer,t", po::value(&tok_dir), "copy this folder's tokenizer files into the output")(
      "force", po::bool_switch(&force), "overwrite an existing model folder")(
      "preset", po::value(&preset),
      "build this named architecture (any family, e.g. llama-tiny) instead of the config's model section");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc,
          "lethe init-model --out DIR [--set model.preset=tiny | --preset llama-tiny] [--tokenizer DIR]",
          "Builds the architecture the config's model section describes (preset + overrides), initialises it "
          "as transformers does (normal(0, initializer_range), seed runtime.seed) and saves it."))
    return 0;
  Config cfg = co.load();
  apply_runtime(cfg.runtime);
  namespace fs = std::filesystem;
  const fs::path dir(out);
  LETHE_CHECK_INPUT(!fs::exists(dir) || fs::is_directory(dir), "--out {}: exists and is not a folder", out);
  for (const char* f : {"model.safetensors", "model.safetensors.index.json", "config.json"})
    LETHE_CHECK_INPUT(force || !fs::exists(dir / f),
                      "--out {}: already holds a model ({}); pass --force to overwrite it", out, f);
  // Validate the tokenizer before writing anything, so a bad --tokenizer leaves no half-made folder behind.
  if (!tok_dir.empty()) text::Tokenizer::from_dir(tok_dir);
  const model::ModelConfig arch = preset.empty() ? architecture(cfg.model) : model::preset(preset);
  spdlog::info(
      "initialising {}: {} layers, hidden {}, {} heads ({} key/value), vocab {} ({:.1f} M parameters)",
      arch.model_type(), arch.num_layers(), arch.hidden_size(), arch.num_heads(), arch.num_kv_heads(),
      arch.vocab_size(), static_cast<double>(arch.parameter_count()) / 1e6);
  model::CausalLm m = model::make_causal_lm(arch);
  m->reset_parameters(cfg.runtime.seed);
  model::save_hf_model(m, out, {.tokenizer_from = tok_dir});  // validated above, so its files are there
  spdlog::info("wrote {}", out);
  return 0;
}

}  // namespace lethe::cli
