// Training-step benchmark: forward + LM loss + backward + AdamW on a randomly initialised model, fp32
// (GPT-Neo 125M's shape by default, or the architecture of a folder's config.json, any family). Prints one
// JSON object; bench/run.sh runs it beside bench/peer_train.py (transformers + torch.optim.AdamW).
//   bench_train [--preset gpt-neo-125m | DIR] [--batch 8] [--seq 200] [--steps 3] [--warmup 1] [--threads 2]
//               [--loss chunked|plain]
// chunked (the default, what lethe train runs): model/lm_loss.h, the head and CE in row chunks; plain: full
// [B·T, V] logits and torch's cross-entropy, as transformers does.
#include <chrono>
#include <iostream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "core/memory.h"
#include "model/gpt_neo.h"
#include "model/lm_loss.h"
#include "zero/adamw.h"

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
  std::string preset = "gpt-neo-125m", loss_kind = "chunked";
  int64_t batch = 8, seq = 200, steps = 3, warmup = 1, threads = 2;
  if (!lethe::bench::parse_flags(argc, argv,
                                 {{"--preset", &preset},
                                  {"--batch", &batch},
                                  {"--seq", &seq},
                                  {"--steps", &steps},
                                  {"--warmup", &warmup},
                                  {"--threads", &threads},
                                  {"--loss", &loss_kind}}))
    return 2;
  lethe::model::CausalLm model = lethe::bench::random_model(preset, threads);
  const lethe::model::ModelConfig& cfg = model->config();
  model->train();
  lethe::zero::AdamW opt(model->parameters(), {.lr = 1e-5, .weight_decay = 0.01});
  at::manual_seed(0);
  at::Tensor ids = at::randint(0, cfg.vocab_size(), {batch, seq}, at::kLong);

  double mean = 0, fwd = 0, bwd = 0, optim = 0, loss = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    auto t0 = Clock::now();
    at::Tensor l = loss_kind == "plain"
                       ? lethe::model::causal_lm_loss(model->forward(ids).logits, ids)
                       : lethe::model::next_token_ce_sum(
                             model->forward(ids, {.compute_logits = false}).last_hidden_state,
                             model->head_weight(), ids) /
                             static_cast<double>(batch * (seq - 1));
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
  // FLOPs per token: 6N (N = the parameters in matrix products: lookups such as GPT-Neo's position table or
  // an untied input embedding left out) + 12·L·C·T for attention scores and values, no causal discount (the
  // torchtitan / nanoGPT convention).
  const double n = static_cast<double>(cfg.matmul_parameter_count());
  const double flops_per_token =
      6.0 * n + 12.0 * static_cast<double>(cfg.num_layers() * cfg.hidden_size() * seq);
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
                      {"loss_kind", loss_kind},
                      {"peak_rss_bytes", lethe::peak_rss_bytes()},
                      {"flops_per_s", flops_per_token * tokens_per_s},
                      {"peak_mm_flops_per_s", peak},
                      {"fraction_of_peak", flops_per_token * tokens_per_s / peak}};
  std::cout << j.dump() << "\n";
  return 0;
}
