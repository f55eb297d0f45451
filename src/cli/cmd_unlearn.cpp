// `lethe unlearn --config F [--resume auto|PATH] [ICU flags] [--set k=v]...`: the main job, alone or under
// `mpirun -np N` (train/unlearner.h does the work). The ICU reference script's flags are accepted and
// override the unlearn.* keys they name.
#include <cmath>
#include <optional>

#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "cli/distributed.h"
#include "core/error.h"
#include "core/signals.h"
#include "eval/bertscore.h"
#include "text/tokenizer.h"
#include "train/unlearner.h"

namespace lethe::cli {

int run_unlearn(int argc, char** argv) {
  install_stop_handlers();  // first: a stop signal during start-up is acted on at the first step boundary
  ConfigOptions co;
  std::string resume;
  // The reference's flags (train_neo_meanwhile_update.py), each an alias of one config key.
  struct Alias {
    const char* flag;
    const char* help;
    const char* key;
  };
  const Alias aliases[] = {{"uw", "= unlearn.uw (forget-term weight)", "unlearn.uw"},
                           {"lw", "= unlearn.lw (neighbour LM weight)", "unlearn.lw"},
                           {"kl", "= unlearn.kl (KL weight)", "unlearn.kl"},
                           {"f1", "= unlearn.f1 (BERTScore F1 threshold)", "unlearn.f1"},
                           {"bleu", "= unlearn.bleu (BLEU threshold)", "unlearn.bleu"},
                           {"acc", "= unlearn.acc (MA stop threshold)", "unlearn.acc"},
                           {"el", "= unlearn.el (EL stop threshold)", "unlearn.el"},
                           {"lr", "= optimizer.lr", "optimizer.lr"}};
  std::vector<std::optional<double>> values(std::size(aliases));
  std::optional<int64_t> batch;
  po::options_description desc;
  desc.add_options()(
      "resume", po::value(&resume),
      "auto = newest complete checkpoint of the run (fresh start if none), or a checkpoint folder");
  for (size_t i = 0; i < std::size(aliases); ++i)
    desc.add_options()(aliases[i].flag,
                       po::value<double>()->notifier([&values, i](double v) { values[i] = v; }),
                       aliases[i].help);
  desc.add_options()("batch_size", po::value<int64_t>()->notifier([&](int64_t v) { batch = v; }),
                     "= unlearn.batch_size");
  co.add_to(desc);
  if (!parse(
          argc, argv, desc,
          "lethe unlearn --config F [--resume auto|PATH] [--uw --lw --kl --f1 --bleu --acc --el --lr "
          "--batch_size] [--set k=v]...",
          "Unlearns the forget set prepared by lethe prep (unlearn.dataset) from model.path with ICU or a "
          "baseline (unlearn.method). Run alone or as N ranks: mpirun -np N lethe unlearn --config F. Writes "
          "<run.output_dir>/<run.name>/: config.resolved.yaml, metrics.h5 (per-step terms, per-epoch "
          "summaries, per-pair tables), checkpoints/, final/ (HF folder), unlearn.json. Exit 143 after a "
          "stop "
          "signal (checkpoint saved)."))
    return 0;
  // The aliases override the file and --set: rebuild the --set list so load_config validates them too.
  for (size_t i = 0; i < std::size(aliases); ++i)
    if (values[i]) co.sets.push_back(fmt::format("{}={}", aliases[i].key, *values[i]));
  if (batch) co.sets.push_back(fmt::format("unlearn.batch_size={}", *batch));
  Config cfg = co.load();
  if (!resume.empty()) cfg.checkpoint.resume = resume;
  return run_on_world(cfg, [&](const comm::World& world) {
    const text::Tokenizer tok = load_tokenizer("", cfg.model.path, cfg);
    std::optional<eval::BertScorer> scorer;
    if (!cfg.unlearn.bert_path.empty())
      scorer.emplace(cfg.unlearn.bert_path, cfg.unlearn.bert_layer, world.device);
    eval::TextScorer bert;
    if (scorer)
      bert = [&](const auto& c, const auto& r) { return scorer->score(c, r, cfg.unlearn.val_batch_size); };
    const train::UnlearnOutcome out = train::run_unlearning(cfg, world.comms(), tok, bert);
    if (out.stopped_by_signal) return kExitStopped;
    if (world.host->rank() == 0 && !std::isnan(out.el))
      spdlog::info("unlearn finished after {} epoch(s): {} (EL {:.4f}, MA {:.4f})", out.epochs,
                   out.stop_reason, out.el, out.ma);
    return kExitOk;
  });
}

}  // namespace lethe::cli
