// `lethe generate --model DIR (--prompt S | --prompt-ids 1,2,3)... --max-new-tokens N [--num-beams K]
// [--json]` Several --prompt (or --prompt-ids) make a left-padded batch, as HF generation does.
#include <iostream>

#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "model/causal_lm.h"
#include "model/generate.h"
#include "text/tokenizer.h"

namespace lethe::cli {

int run_generate(int argc, char** argv) {
  ConfigOptions co;
  std::string model_dir, tok_dir;
  std::vector<std::string> prompts, prompt_ids;
  int64_t max_new = 0, beams = 0;
  bool json = false;
  po::options_description desc;
  desc.add_options()("model,m", po::value(&model_dir)->required(), "Hugging Face GPT-Neo folder")(
      "prompt,p", po::value(&prompts)->composing(),
      "prompt text (repeatable: a batch); tokenized as HF's tokenizer(text), with the tokenizer's BOS if it "
      "adds one")("prompt-ids", po::value(&prompt_ids)->composing(),
                  "prompt as comma-separated token ids (repeatable)")(
      "max-new-tokens,n", po::value(&max_new), "tokens to generate (= --set generate.max_new_tokens=N)")(
      "num-beams,k", po::value(&beams), "beams, 1 = greedy (= --set generate.num_beams=K)")(
      "tokenizer,t", po::value(&tok_dir),
      "tokenizer folder (default: the model folder, then tokenizer.path)")("json", po::bool_switch(&json),
                                                                           "one JSON object per prompt");
  co.add_to(desc);
  const char* usage =
      "lethe generate --model DIR (--prompt S | --prompt-ids 1,2,3)... [-n N] [-k K] [--json]";
  const auto vm =
      parse(argc, argv, desc, usage,
            "Greedy or beam-search continuation with a KV cache; length_penalty and early_stopping "
            "come from the generate section of the config (--set generate.length_penalty=0.8).");
  if (!vm) return 0;
  LETHE_CHECK_INPUT(prompts.empty() != prompt_ids.empty(),
                    "give --prompt or --prompt-ids (not both)\nusage: {}", usage);
  // The shorthand flags are config overrides, validated (and reported) like any --set.
  if (vm->count("max-new-tokens")) co.sets.push_back(fmt::format("generate.max_new_tokens={}", max_new));
  if (vm->count("num-beams")) co.sets.push_back(fmt::format("generate.num_beams={}", beams));
  Config cfg = co.load();
  apply_runtime(cfg.runtime);

  // All input is read and checked before the model is loaded.
  std::optional<text::Tokenizer> tok;
  if (!prompts.empty() || !json) tok = load_tokenizer(tok_dir, model_dir, cfg);
  std::vector<std::vector<int64_t>> rows;
  for (const auto& p : prompts) {
    std::vector<int64_t> ids;
    for (int32_t id : tok->encode_with_specials(p)) ids.push_back(id);  // HF's tokenizer(p): Llama's BOS
    LETHE_CHECK_INPUT(!ids.empty(), "--prompt: the prompt is empty; give at least one token");
    rows.push_back(std::move(ids));
  }
  for (const auto& p : prompt_ids) rows.push_back(parse_ids(p, "--prompt-ids"));

  const torch::Device device = local_device(cfg);
  model::CausalLm model = load_model(model_dir, cfg, device);
  const auto& mc = model->config();
  size_t width = 0;
  for (const auto& r : rows) {
    for (int64_t id : r)
      LETHE_CHECK_INPUT(id < mc.vocab_size(), "--prompt-ids: token id {} is not below the vocabulary size {}",
                        id, mc.vocab_size());
    width = std::max(width, r.size());
  }
  LETHE_CHECK_INPUT(
      static_cast<int64_t>(width) + cfg.generate.options.max_new_tokens <= mc.max_position_embeddings(),
      "prompt ({} tokens) + max_new_tokens ({}) exceeds the model's max_position_embeddings ({})", width,
      cfg.generate.options.max_new_tokens, mc.max_position_embeddings());

  // Left padding: generation appends on the right, so every row's last real token must be in the last column.
  const int64_t b = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(width);
  torch::Tensor ids = torch::zeros({b, t}, torch::kLong), mask = torch::zeros({b, t}, torch::kLong);
  for (int64_t r = 0; r < b; ++r) {
    const auto n = static_cast<int64_t>(rows[r].size());
    ids[r].slice(0, t - n).copy_(torch::tensor(rows[r], torch::kLong));
    mask[r].slice(0, t - n).fill_(1);
  }
  model::GenerateOptions opt = cfg.generate.options;
  if (opt.eos_token_ids.empty()) opt.eos_token_ids = mc.eos_token_ids();
  model::GenerateResult res = model::generate(model, ids.to(device), mask.to(device), opt);
  res.sequences = res.sequences.cpu();  // decoded and printed here
  if (res.scores.defined()) res.scores = res.scores.cpu();

  // Decode everything before printing anything: a failure leaves no partial output.
  std::vector<nlohmann::json> out;
  for (int64_t r = 0; r < b; ++r) {
    torch::Tensor cont = res.sequences[r].slice(0, t).contiguous();
    std::vector<int64_t> ids_out(cont.data_ptr<int64_t>(), cont.data_ptr<int64_t>() + cont.numel());
    nlohmann::json j = {{"prompt_ids", rows[r]}, {"ids", ids_out}};
    if (tok) j["text"] = tok->decode(std::vector<int32_t>(ids_out.begin(), ids_out.end()));
    if (res.scores.defined()) j["score"] = res.scores[r].item<double>();
    out.push_back(std::move(j));
  }
  for (size_t r = 0; r < out.size(); ++r) {
    if (json)
      print_json(out[r]);
    else
      std::cout << fmt::format("[{}] {}\n", r, out[r]["text"].get<std::string>());
  }
  return 0;
}

}  // namespace lethe::cli
