// `lethe score --model DIR --input F.jsonl [--json]`: log-probabilities of every line's tokens.
// Each line is {"text": "..."} or {"ids": [...]}. The whole file is read and validated before any output.
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <torch/utils.h>

#include "cli/common.h"
#include "core/error.h"
#include "model/causal_lm.h"
#include "text/tokenizer.h"

namespace lethe::cli {
namespace {

struct Row {
  int line;                  // 1-based line in the input file (blank lines are skipped, not renumbered)
  std::vector<int64_t> ids;  // tokens to score
};

std::vector<Row> read_inputs(const std::string& file, const std::string& tok_dir,
                             const std::string& model_dir, const Config& cfg, int64_t vocab,
                             int64_t max_len) {
  std::ifstream in(file);
  LETHE_CHECK_INPUT(in.good(), "--input {}: cannot open it", file);
  std::optional<text::Tokenizer> tok;
  std::vector<Row> rows;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    LETHE_CHECK_INPUT(j.is_object() && (j.contains("text") != j.contains("ids")),
                      "{}:{}: expected a JSON object with either \"text\" (string) or \"ids\" (list of ints)",
                      file, lineno);
    std::vector<int64_t> ids;
    if (j.contains("text")) {
      LETHE_CHECK_INPUT(j["text"].is_string(), "{}:{}: \"text\" must be a string", file, lineno);
      if (!tok) tok = load_tokenizer(tok_dir, model_dir, cfg);
      // HF's tokenizer(text): with the BOS a Llama tokenizer adds (nothing for GPT-2).
      for (int32_t id : tok->encode_with_specials(j["text"].get<std::string>())) ids.push_back(id);
    } else {
      LETHE_CHECK_INPUT(j["ids"].is_array(), "{}:{}: \"ids\" must be a list of token ids", file, lineno);
      for (const auto& v : j["ids"]) {
        LETHE_CHECK_INPUT(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab,
                          "{}:{}: token id {} is not in [0, {}) (the model's vocabulary)", file, lineno,
                          v.dump(), vocab);
        ids.push_back(v.get<int64_t>());
      }
    }
    LETHE_CHECK_INPUT(ids.size() >= 2 && static_cast<int64_t>(ids.size()) <= max_len,
                      "{}:{}: {} tokens; scoring needs between 2 and {} (max_position_embeddings)", file,
                      lineno, ids.size(), max_len);
    rows.push_back({lineno, std::move(ids)});
  }
  LETHE_CHECK_INPUT(!rows.empty(), "--input {}: no lines to score", file);
  return rows;
}

}  // namespace

int run_score(int argc, char** argv) {
  ConfigOptions co;
  std::string model_dir, input, tok_dir;
  int batch = 8;
  bool json = false;
  po::options_description desc;
  desc.add_options()("model,m", po::value(&model_dir)->required(), "Hugging Face GPT-Neo folder")(
      "input,i", po::value(&input)->required(), "JSONL file: {\"text\": ...} or {\"ids\": [...]} per line")(
      "tokenizer,t", po::value(&tok_dir),
      "tokenizer folder (default: the model folder, then tokenizer.path)")(
      "batch-size", po::value(&batch)->default_value(8), "lines per forward pass")(
      "json", po::bool_switch(&json), "one JSON object per input line");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc, "lethe score --model DIR --input F.jsonl [--json]",
          "Sum and per-token log-probabilities (natural log) of each line; the first token is the context."))
    return 0;
  LETHE_CHECK_INPUT(batch >= 1, "--batch-size must be at least 1, got {}", batch);
  Config cfg = co.load();
  apply_runtime(cfg.runtime);
  const torch::Device device = local_device(cfg);
  model::CausalLm model = load_model(model_dir, cfg, device);
  const auto& mc = model->config();
  auto rows = read_inputs(input, tok_dir, model_dir, cfg, mc.vocab_size(), mc.max_position_embeddings());

  torch::NoGradGuard no_grad;
  for (size_t start = 0; start < rows.size(); start += batch) {
    const size_t end = std::min(rows.size(), start + batch);
    size_t width = 0;
    for (size_t r = start; r < end; ++r) width = std::max(width, rows[r].ids.size());
    // Right padding keeps default positions correct; padded positions are masked and never reported.
    torch::Tensor ids =
        torch::zeros({static_cast<int64_t>(end - start), static_cast<int64_t>(width)}, torch::kLong);
    torch::Tensor mask = torch::zeros_like(ids);
    for (size_t r = start; r < end; ++r) {
      const auto n = static_cast<int64_t>(rows[r].ids.size());
      ids[r - start].slice(0, 0, n).copy_(torch::tensor(rows[r].ids, torch::kLong));
      mask[r - start].slice(0, 0, n).fill_(1);
    }
    // Hidden states for the batch, then the LM head one row at a time: [T, V] logits per row instead of
    // [B, T, V] (3.3 GB in fp32 for 8 rows of 2048 tokens).
    ids = ids.to(device);
    torch::Tensor hidden =
        model->forward(ids, {.attention_mask = mask.to(device), .compute_logits = false}).last_hidden_state;
    for (size_t r = start; r < end; ++r) {
      const auto n = static_cast<int64_t>(rows[r].ids.size());
      torch::Tensor row_ids = ids[r - start].slice(0, 0, n);
      torch::Tensor logits = model->lm_head(hidden[r - start].slice(0, 0, n)).unsqueeze(0);
      torch::Tensor lp =
          model::next_token_logprobs(logits, row_ids.unsqueeze(0))[0].to(torch::kDouble).cpu().contiguous();
      std::vector<double> values(lp.data_ptr<double>(), lp.data_ptr<double>() + (n - 1));
      const double sum = lp.sum().item<double>();  // host tensor: printed below
      if (json)
        print_json({{"line", rows[r].line}, {"tokens", n}, {"sum_logprob", sum}, {"logprobs", values}});
      else
        std::cout << fmt::format("line {:>5}  tokens {:>5}  sum_logprob {:>12.4f}  mean {:>9.4f}\n",
                                 rows[r].line, n, sum, sum / static_cast<double>(n - 1));
    }
  }
  return 0;
}

}  // namespace lethe::cli
