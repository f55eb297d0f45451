// Training-step benchmark: forward + LM loss + backward + AdamW on a randomly initialised GPT-Neo, fp32.
// Prints one JSON object; bench/run.sh runs it beside bench/peer_train.py (transformers + torch.optim.AdamW).
//   bench_train [--preset gpt-neo-125m] [--batch 8] [--seq 200] [--steps 3] [--warmup 1] [--threads 2]
#include <chrono>
#include <iostream>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "core/memory.h"
#include "model/gpt_neo.h"
#include "model/presets.h"
#include "train/adamw.h"

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Peak fp32 matmul throughput of this machine at the current thread count (FLOP/s), 2048³ as in
// shared/spec/environment-notes.md.
double peak_mm_flops() {
  const int64_t n = 2048;
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::mm(a, b);  // warm-up
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    auto t = Clock::now();
    at::mm(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t));
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  lethe::retain_freed_memory();
  std::string preset = "gpt-neo-125m";
  int64_t batch = 8, seq = 200, steps = 3, warmup = 1, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset")
      preset = v;
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--seq")
      seq = std::stoll(v);
    else if (k == "--steps")
      steps = std::stoll(v);
    else if (k == "--warmup")
      warmup = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  at::set_num_threads(static_cast<int>(threads));
  const lethe::model::GptNeoConfig cfg = lethe::model::preset(preset);
  lethe::model::GptNeo model(cfg);
  model->reset_parameters(1234);
  model->train();
  lethe::train::AdamW opt(model->parameters(), {.lr = 1e-5, .weight_decay = 0.01});
  at::manual_seed(0);
  at::Tensor ids = at::randint(0, cfg.vocab_size, {batch, seq}, at::kLong);

  double mean = 0, fwd = 0, bwd = 0, optim = 0, loss = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    auto t0 = Clock::now();
    at::Tensor l = lethe::model::causal_lm_loss(model->forward(ids).logits, ids);
    loss = l.item<double>();
    const double f = seconds_since(t0);
    auto t1 = Clock::now();
    l.backward();
    const double b = seconds_since(t1);
    auto t2 = Clock::now();
    opt.step();
    opt.zero_grad();
    const double o = seconds_since(t2);
    if (s < warmup) continue;
    const double w = 1.0 / static_cast<double>(steps);
    fwd += f * w, bwd += b * w, optim += o * w, mean += (f + b + o) * w;
  }
  // FLOPs per token: 6N (N = parameters, embedding tied into the head) + 12·L·C·T for attention scores and
  // values, no causal discount (the torchtitan / nanoGPT convention).
  const double n = static_cast<double>(lethe::model::parameter_count(cfg));
  const double flops_per_token = 6.0 * n + 12.0 * static_cast<double>(cfg.num_layers * cfg.hidden_size * seq);
  const double tokens_per_s = static_cast<double>(batch * seq) / mean;
  const double peak = peak_mm_flops();
  nlohmann::json j = {{"impl", "lethe"},
                      {"preset", preset},
                      {"batch", batch},
                      {"seq", seq},
                      {"threads", threads},
                      {"step_s", mean},
                      {"forward_s", fwd},
                      {"backward_s", bwd},
                      {"optimizer_s", optim},
                      {"tokens_per_s", tokens_per_s},
                      {"loss", loss},
                      {"flops_per_s", flops_per_token * tokens_per_s},
                      {"peak_mm_flops_per_s", peak},
                      {"fraction_of_peak", flops_per_token * tokens_per_s / peak}};
  std::cout << j.dump() << "\n";
  return 0;
}
