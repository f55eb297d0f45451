// `lethe init-model --out DIR [--config F] [--set model.preset=tiny]`: a randomly initialised GPT-Neo saved
// as a Hugging Face folder (config.json + model.safetensors, plus tokenizer files when --tokenizer is given).
// Used by the demo and for experiments that start from scratch.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"
#include "model/gpt_neo.h"
#include "model/hf_checkpoint.h"
#include "model/presets.h"

namespace lethe::cli {

int run_init_model(int argc, char** argv) {
  ConfigOptions co;
  std::string out, tok_dir;
  bool force = false;
  po::options_description desc;
  desc.add_options()("out,o", po::value(&out)->required(), "folder to write")(
      "tokenizer,t", po::value(&tok_dir), "copy this folder's tokenizer files into the output")(
      "force", po::bool_switch(&force), "overwrite an existing model folder");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc, "lethe init-model --out DIR [--set model.preset=tiny] [--tokenizer DIR]",
          "Builds the architecture the config's model section describes (preset + overrides), initialises it "
          "as transformers does (normal(0, initializer_range), seed runtime.seed) and saves it."))
    return 0;
  Config cfg = co.load();
  apply_runtime(cfg.runtime);
  namespace fs = std::filesystem;
  LETHE_CHECK_INPUT(force || !fs::exists(fs::path(out) / "model.safetensors"),
                    "--out {}: already holds a model; pass --force to overwrite it", out);
  LETHE_CHECK_INPUT(tok_dir.empty() || fs::is_directory(tok_dir), "--tokenizer {}: no such folder", tok_dir);

  const model::GptNeoConfig arch = architecture(cfg.model);
  spdlog::info("initialising GPT-Neo: {} layers, hidden {}, {} heads, vocab {} ({:.1f} M parameters)",
               arch.num_layers, arch.hidden_size, arch.num_heads, arch.vocab_size,
               static_cast<double>(model::parameter_count(arch)) / 1e6);
  model::GptNeo m(arch);
  m->reset_parameters(cfg.runtime.seed);
  model::save_hf_model(m, out);
  if (!tok_dir.empty()) model::copy_tokenizer_files(tok_dir, out);
  spdlog::info("wrote {}", out);
  return 0;
}

}  // namespace lethe::cli
