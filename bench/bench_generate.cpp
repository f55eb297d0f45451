// Generation benchmark: a randomly initialised model (GPT-Neo 125M's shape by default, or the architecture of
// a folder's config.json), a batch of random prompts, KV-cached greedy and beam search. Prints one JSON
// object per mode; bench/run.sh runs it beside bench/peer_generate.py (transformers `model.generate`).
//   bench_generate [--preset gpt-neo-125m | DIR] [--batch 8] [--prompt 50] [--new 50] [--beams 2] [--reps 2]
//   [--threads 2]
#include <chrono>
#include <iostream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "model/generate.h"

int main(int argc, char** argv) {
  std::string preset = "gpt-neo-125m";
  int64_t batch = 8, prompt = 50, fresh = 50, beams = 2, reps = 2, threads = 2;
  if (!lethe::bench::parse_flags(argc, argv,
                                 {{"--preset", &preset},
                                  {"--batch", &batch},
                                  {"--prompt", &prompt},
                                  {"--new", &fresh},
                                  {"--beams", &beams},
                                  {"--reps", &reps},
                                  {"--threads", &threads}}))
    return 2;
  lethe::model::CausalLm model = lethe::bench::random_model(preset, threads);
  const auto& cfg = model->config();
  model->eval();
  at::manual_seed(0);
  at::Tensor ids = at::randint(0, cfg.vocab_size() - 1, {batch, prompt}, at::kLong);
  for (int64_t k : {int64_t{1}, beams}) {
    lethe::model::GenerateOptions o{
        .max_new_tokens = fresh, .num_beams = k, .eos_token_ids = cfg.eos_token_ids()};
    lethe::model::generate(model, ids, {}, o);  // warm-up
    double best = 1e30;
    int64_t produced = 0;
    for (int64_t r = 0; r < reps; ++r) {
      auto t = std::chrono::steady_clock::now();
      auto res = lethe::model::generate(model, ids, {}, o);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
      produced = res.sequences.size(1) - prompt;
    }
    std::cout << nlohmann::json{{"impl", "lethe"},
                                {"num_beams", k},
                                {"seconds", best},
                                {"batch", batch},
                                {"new_tokens", produced},
                                {"tokens_per_s", static_cast<double>(batch * produced) / best}}
                     .dump()
              << "\n";
  }
  return 0;
}
