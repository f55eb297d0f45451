// `lethe eval [--config F] --model DIR [--utility ...] [--out FILE] [--json] [--set k=v]...`: ICU's
// forget-set metrics (EL, MA, BLEU, diversity, loss) and the retained rows' MA and loss, or the downstream
// utility suite, for one model (HF folder or lethe checkpoint), alone or under mpirun.
#include <iostream>

#include <yaml-cpp/yaml.h>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "cli/distributed.h"
#include "core/error.h"
#include "core/io.h"
#include "data/npy.h"
#include "eval/bertscore.h"
#include "eval/extraction.h"
#include "io/checkpoint_model.h"
#include "model/lm_loss.h"
#include "prep/pairs.h"
#include "text/tokenizer.h"
#include "train/run_common.h"
#include "train/utility_eval.h"
#include "train/validation.h"
#include "utility/suite.h"

namespace lethe::cli {
namespace {

struct RowScores {
  double ma = 0, el = 0, loss = 0;
};

// Mean MA, LM loss and (when `el` is given) EL of `rows` [M, T]: each rank scores its block; sums are
// all-reduced.
RowScores row_scores(model::CausalLm& model, const torch::Tensor& rows, int64_t eos, int64_t batch,
                     int64_t ma_begin, const eval::ElOptions* el, comm::Communicator& comm) {
  const int64_t m = rows.size(0), lo = comm.rank() * m / comm.size(),
                hi = (comm.rank() + 1) * m / comm.size();
  double ma = 0, ce = 0, tokens = 0, el_sum = 0;
  if (hi > lo) {
    torch::Tensor x = rows.narrow(0, lo, hi - lo);
    for (double v : eval::memorization_accuracy(model, x, batch, ma_begin)) ma += v;
    if (el)
      for (double v : eval::extraction_likelihood(model, x, *el)) el_sum += v;
    // LM loss over next tokens that are not EOS, summed on the model's device and read once.
    torch::NoGradGuard g;
    const torch::Device dev = model->head_weight().device();
    torch::Tensor sums = torch::zeros({2}, torch::dtype(torch::kDouble).device(dev));  // [CE, tokens]
    for (int64_t b = 0; b < x.size(0); b += batch) {
      const torch::Tensor y = x.narrow(0, b, std::min(batch, x.size(0) - b)).to(dev);
      const torch::Tensor labels = y.masked_fill(y == eos, -100);
      model::ForwardArgs a;
      a.compute_logits = false;
      const torch::Tensor h = model->forward(y, a).last_hidden_state;
      sums[0] += model::next_token_ce_sum(h, model->head_weight(), labels).to(torch::kDouble);
      sums[1] += (labels.narrow(1, 1, y.size(1) - 1) != -100).sum().to(torch::kDouble);
    }
    const torch::Tensor host = sums.cpu();
    ce = host[0].item<double>();
    tokens = host[1].item<double>();
  }
  torch::Tensor s = torch::tensor({ma, ce, tokens, el_sum}, torch::kDouble);
  comm.all_reduce(s);
  const auto mm = static_cast<double>(m);
  return {s[0].item<double>() / mm, s[3].item<double>() / mm,
          s[2].item<double>() > 0 ? s[1].item<double>() / s[2].item<double>() : 0.0};
}

// "A:B" → [A, B).
std::pair<int64_t, int64_t> parse_range(const std::string& text) {
  const size_t colon = text.find(':');
  LETHE_CHECK_INPUT(colon != std::string::npos, "--heldout '{}': expected A:B (source rows A..B-1)", text);
  const std::vector<int64_t> a = parse_ids(text.substr(0, colon), "--heldout"),
                             b = parse_ids(text.substr(colon + 1), "--heldout");
  LETHE_CHECK_INPUT(a.size() == 1 && b.size() == 1 && a[0] < b[0], "--heldout '{}': expected A:B with A < B",
                    text);
  return {a[0], b[0]};
}

// The model to evaluate: an HF folder, or a lethe checkpoint (a step folder, a checkpoints root or a run
// folder: the newest complete one). A checkpoint without a configured tokenizer uses the one its run used.
model::CausalLm load_eval_model(Config& cfg, torch::Device device) {
  if (const auto ckpt = io::checkpoint_folder(cfg.model.path)) {
    if (cfg.tokenizer.path.empty()) {
      const YAML::Node saved = YAML::Load(io::checkpoint_config_yaml(*ckpt));
      cfg.tokenizer.path = saved["tokenizer"]["path"].as<std::string>("");
      if (cfg.tokenizer.path.empty()) cfg.tokenizer.path = saved["model"]["path"].as<std::string>("");
    }
    spdlog::info("eval: checkpoint {}", ckpt->string());
    model::CausalLm m = io::load_checkpoint_model(*ckpt, train::torch_dtype(cfg.model.dtype));
    m->to(device);
    return m;
  }
  return train::make_model(cfg, device);
}

nlohmann::json forget_eval(const Config& cfg, model::CausalLm& model, const text::Tokenizer& tok,
                           int64_t retain_rows, const std::string& heldout, comm::Communicator& world) {
  const prep::Pairs pairs = prep::read_pairs(cfg.unlearn.dataset);
  const int64_t eos = model->config().eos_token_id();
  train::check_forget_rows(cfg.unlearn, pairs, model->config(), tok.vocab_size());
  std::optional<eval::BertScorer> scorer;
  if (!cfg.unlearn.bert_path.empty())
    scorer.emplace(cfg.unlearn.bert_path, cfg.unlearn.bert_layer, model->head_weight().device());
  eval::TextScorer bert;
  if (scorer)
    bert = [&](const auto& c, const auto& r) { return scorer->score(c, r, cfg.unlearn.val_batch_size); };
  const eval::ForgetScoreOptions so = train::forget_score_options(cfg, eos);
  const train::Validation v =
      train::validate_sharded(model, train::forget_rows(pairs, so, tok), so, tok, bert, world);
  nlohmann::json result = {{"dataset", cfg.unlearn.dataset},
                           {"el_variant", std::string(enum_name(cfg.unlearn.el_variant))},
                           {"el_n", cfg.unlearn.el_n},
                           {"rows", std::string(enum_name(pairs.rows))},
                           {"forget",
                            {{"n", pairs.forget_ids.size(0)},
                             {"el", v.el},
                             {"ma", v.ma},
                             {"bleu", v.bleu},
                             {"distinct", v.distinct},
                             {"entropy", v.entropy},
                             {"loss", v.val_loss},
                             {"seconds", v.seconds}}}};
  if (v.has_bert) result["forget"]["bert_f1"] = v.bert_f1;
  if (retain_rows != 0 || !heldout.empty()) {
    data::TokenArray a = data::read_npy(pairs.source);
    torch::Tensor src = torch::from_blob(a.values.data(), {a.rows, a.cols}, torch::kLong);
    if (retain_rows != 0) {
      torch::Tensor ids = pairs.retain_ids;
      if (retain_rows > 0) ids = ids.narrow(0, 0, std::min(retain_rows, ids.size(0)));
      LETHE_CHECK_INPUT(ids.numel() == 0 || ids.max().item<int64_t>() < a.rows,
                        "{}: retained ids exceed the {} rows of {}", cfg.unlearn.dataset, a.rows,
                        pairs.source);
      torch::Tensor rows = src.index_select(0, ids).clone();
      const RowScores r =
          row_scores(model, rows, eos, cfg.unlearn.val_batch_size, cfg.unlearn.ma_begin, nullptr, world);
      result["retain"] = {{"n", rows.size(0)}, {"ma", r.ma}, {"loss", r.loss}};
    }
    if (!heldout.empty()) {
      const auto [lo, hi] = parse_range(heldout);
      LETHE_CHECK_INPUT(lo >= 0 && hi <= a.rows, "--heldout {}: {} has rows 0..{}", heldout, pairs.source,
                        a.rows - 1);
      const eval::ElOptions el = train::forget_score_options(cfg, eos).el;
      const RowScores r = row_scores(model, src.narrow(0, lo, hi - lo).clone(), eos,
                                     cfg.unlearn.val_batch_size, cfg.unlearn.ma_begin, &el, world);
      result["heldout"] = {{"n", hi - lo}, {"rows", heldout}, {"ma", r.ma}, {"el", r.el}, {"loss", r.loss}};
    }
  }
  if (world.rank() == 0)
    spdlog::info("eval {}: forget EL{} {:.4f} MA {:.4f} BLEU {:.4f}{}", cfg.model.path, cfg.unlearn.el_n,
                 v.el, v.ma, v.bleu,
                 result.contains("retain")
                     ? fmt::format(" | retain MA {:.4f} loss {:.4f}", result["retain"]["ma"].get<double>(),
                                   result["retain"]["loss"].get<double>())
                     : "");
  return result;
}

}  // namespace

int run_eval(int argc, char** argv) {
  ConfigOptions co;
  std::string model_dir, out_file, heldout, suite_file, tasks, metrics_file;
  int64_t retain_rows = 64, limit = -1;
  bool json = false, utility = false, forget = false, keep_going = false;
  po::options_description desc;
  desc.add_options()(
      "model", po::value(&model_dir),
      "HF folder or lethe checkpoint (step folder, checkpoints root or run folder) to evaluate; "
      "overrides model.path")("retain-rows", po::value(&retain_rows)->default_value(64),
                              "score the first N retained rows of the dataset's source (0 = none, -1 = all)")(
      "heldout", po::value(&heldout),
      "A:B: also score source rows A..B-1 (MA, EL, loss), e.g. rows the model never saw — KU's thresholds")(
      "utility", po::bool_switch(&utility),
      "run the downstream utility suite (utility.suite) instead of the forget-set metrics")(
      "forget", po::bool_switch(&forget), "with --utility: also run the forget-set metrics")(
      "suite", po::value(&suite_file), "utility suite file (implies --utility); overrides utility.suite")(
      "tasks", po::value(&tasks), "comma-separated subset of the suite's tasks; overrides utility.tasks")(
      "limit", po::value(&limit), "first N examples of every utility task; overrides utility.limit")(
      "keep-going", po::bool_switch(&keep_going),
      "a utility task that cannot be read is reported and skipped; the others still run (exit 2 at the end)")(
      "metrics", po::value(&metrics_file),
      "write per-example utility tables to this HDF5 file (/utility/<task>)")(
      "out", po::value(&out_file), "also write the JSON result to this file (atomically)")(
      "json", po::bool_switch(&json), "print the result as one JSON line on stdout");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc,
          "lethe eval [--config F] --model DIR [--utility [--suite F] [--tasks a,b] [--limit N]] "
          "[--out FILE] [--json]",
          "Scores a model on the forget set of unlearn.dataset exactly as lethe unlearn validates (EL_n, MA, "
          "beam-continuation BLEU, distinct ratio, entropy, loss) and on retained rows (MA, loss); with "
          "--utility, on the downstream suite (classification acc / acc_norm, LAMBADA, dialogue F1, "
          "perplexity; Cls Avg, Dia Avg)."))
    return 0;
  Config cfg = co.load();
  if (!model_dir.empty()) cfg.model.path = model_dir;
  if (!suite_file.empty()) cfg.utility.suite = suite_file, utility = true;
  if (!tasks.empty()) {
    cfg.utility.tasks.clear();
    for (size_t b = 0; b <= tasks.size();) {
      const size_t e = std::min(tasks.find(',', b), tasks.size());
      if (e > b) cfg.utility.tasks.push_back(tasks.substr(b, e - b));
      b = e + 1;
    }
  }
  if (limit >= 0) cfg.utility.limit = limit;
  if (keep_going) cfg.utility.keep_going = true;
  LETHE_CHECK_INPUT(!cfg.model.path.empty(), "no model: pass --model DIR or set model.path");
  LETHE_CHECK_INPUT(std::filesystem::exists(cfg.model.path), "--model {}: no such folder", cfg.model.path);
  return run_on_world(cfg, [&](const comm::World& job) {
    comm::Communicator& world = *job.host;
    model::CausalLm model = load_eval_model(cfg, job.device);
    const text::Tokenizer tok = load_tokenizer("", cfg.model.path, cfg);
    nlohmann::json result = {{"model", cfg.model.path}};
    if (!utility || forget) result.update(forget_eval(cfg, model, tok, retain_rows, heldout, world));
    bool failed = false;
    if (utility) {
      const utility::Suite suite = utility::load_suite(cfg.utility.suite);
      const auto specs = utility::select_tasks(suite, cfg.utility.tasks, cfg.utility.limit);
      const train::PreparedSuite prepared =
          train::prepare_utility(tok, suite, specs, model->config(), cfg.utility.keep_going, world);
      const train::UtilityReport rep = train::run_utility(model, prepared, world);
      result["utility"] = train::utility_json(rep);
      result["utility"]["suite"] = cfg.utility.suite;
      failed = !rep.failed.empty();
      if (world.rank() == 0) {
        if (!metrics_file.empty()) train::write_utility_tables(metrics_file, "utility", rep);
        std::string line;
        for (const auto& [k, v] : train::utility_summary(rep)) line += fmt::format(" {} {:.4f}", k, v);
        spdlog::info("utility ({} tasks, {}):{}", rep.results.size(), hms(rep.seconds), line);
      }
    }
    if (world.rank() == 0) {
      if (!out_file.empty()) {
        const std::string text = result.dump(2) + "\n";
        write_file_atomic(out_file, {std::as_bytes(std::span(text.data(), text.size()))});
      }
      if (json) print_json(result);
    }
    if (failed && world.rank() == 0)
      spdlog::error("utility: some tasks failed (listed under utility.failed)");
    return failed ? kExitBadInput : kExitOk;
  });
}

}  // namespace lethe::cli
