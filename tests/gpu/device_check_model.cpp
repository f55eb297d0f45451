// The single-process steps: the model, generation and the ZeRO engine on CUDA against the CPU path the unit
// tests hold to Hugging Face; which SDPA kernel serves the model's attention; device memory of a 2.7B ICU
// step; training and generation throughput at 125M shape.
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/SDPBackend.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include "comm/local.h"
#include "device_check.h"
#include "model/generate.h"
#include "model/lm_loss.h"
#include "unlearn/objective.h"
#include "zero/engine.h"

namespace lethe::device_check {
namespace {

using Clock = std::chrono::steady_clock;
const torch::Device kCuda(torch::kCUDA, 0);

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// max that propagates NaN (std::max(0, NaN) is 0, which would hide a NaN gradient).
double worst(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
}

// --- parity ------------------------------------------------------------------------------------------------

// One forward input: ids [B, T]; for left-padded rows also the mask [B, T] (1 = token) and position ids.
struct Case {
  std::string name;
  torch::Tensor ids = {}, mask = {}, positions = {};
};

// padded: 3 rows with 0, 5 and 12 left pads, T 20 (the additive-mask path, positions from the mask);
// long:   T 40 > window 8 (local layers masked, global layers plain causal);
// causal: T 8 = window (every layer plain causal: SDPA's is_causal path).
std::vector<Case> parity_cases() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto ids = [&](int64_t b, int64_t t) { return at::randint(0, 512, {b, t}, gen, torch::kLong); };
  Case padded{"padded", ids(3, 20)};
  padded.mask = torch::ones({3, 20}, torch::kLong);
  padded.mask[1].slice(0, 0, 5).zero_();
  padded.mask[2].slice(0, 0, 12).zero_();
  padded.ids.masked_fill_(padded.mask == 0, 0);
  padded.positions = model::position_ids_from_mask(padded.mask);
  return {padded, Case{"long", ids(2, 40)}, Case{"causal", ids(2, 8)}};
}

model::ForwardOutput run_forward(model::CausalLm& m, const Case& c, torch::Device d, bool logits = true) {
  model::ForwardArgs args{.compute_logits = logits};
  if (c.mask.defined()) {
    args.attention_mask = c.mask.to(d);
    args.position_ids = c.positions.to(d);
  }
  return m->forward(c.ids.to(d), args);
}

// max over the kept positions (keep: [B, T] bool) of max_v |a − b|; a, b: [B, T, V] on any device and dtype.
// Padding positions are left out: no real token reads them, and kernels may legitimately differ there.
double kept_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& keep) {
  const torch::Tensor d =
      (a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).abs().amax(-1);
  return torch::where(keep, d, torch::zeros_like(d)).max().item<double>();
}

double kept_absmax(const torch::Tensor& a, const torch::Tensor& keep) {
  return kept_diff(a, torch::zeros_like(a), keep);
}

// Mean next-token CE of `labels` through the chunked head, then backward; returns the loss.
double loss_backward(model::CausalLm& m, const Case& c, const torch::Tensor& labels, torch::Device d) {
  const torch::Tensor hidden = run_forward(m, c, d, /*logits=*/false).last_hidden_state;
  const double n = (labels.slice(1, 1) != -100).sum().item<double>();
  const torch::Tensor loss = model::next_token_ce_sum(hidden, m->head_weight(), labels.to(d)) / n;
  loss.backward();
  return loss.item<double>();
}

// max over parameters of max |grad_a − grad_b|, and max |grad_b| (the scale for relative measures).
std::pair<double, double> grad_diff(const model::CausalLm& a, const model::CausalLm& b) {
  const auto from = a->named_parameters();
  double diff = 0, scale = 0;
  for (const auto& p : b->named_parameters()) {
    const torch::Tensor& g = p.value().grad();
    diff = worst(diff, max_abs_diff(from[p.key()].grad(), g));
    scale = worst(scale, g.abs().max().to(torch::kDouble).item<double>());
  }
  return {diff, scale};
}

// bf16 tolerances. bf16 keeps 8 significant bits, so each rounding moves a value by up to 2^-9 ≈ 0.2 %. A
// forward through 4 layers rounds some 30 times (projections, LayerNorm, GELU, residual adds, SDPA); CPU
// (oneDNN) and CUDA (cuBLAS, fused attention) round at different points and sum in different orders, so their
// logits differ by a random walk of such steps: √30 · 0.2 % ≈ 1 % of the logit scale. 2 % leaves a factor of
// two; a real bug (wrong mask, wrong positions) moves logits by tens of percent. The mean loss averages the
// per-token errors (1 %); gradients go through twice the roundings, the head in bf16 included (5 %). The
// cpu_rel_err / cuda_rel_err numbers measure each path against the same bf16 weights evaluated in fp32:
// both should be of the same size.
constexpr double kBf16Logits = 2e-2, kBf16Loss = 1e-2, kBf16Grad = 5e-2;

void parity(Result& r, torch::ScalarType dtype) {
  const bool bf16 = dtype == torch::kBFloat16;
  const model::GptNeoConfig cfg = tiny_config();
  model::CausalLm cpu = model::make_causal_lm(cfg, torch::kCPU, dtype),
                  gpu = model::make_causal_lm(cfg, kCuda, dtype), exact = model::make_causal_lm(cfg);
  cpu->reset_parameters(7);
  copy_parameters(gpu, cpu);
  copy_parameters(exact, cpu);  // fp32 copy of the same (bf16-rounded) weights: the yardstick for bf16
  const std::vector<Case> cases = parity_cases();
  for (const Case& c : cases) {
    torch::NoGradGuard no_grad;
    const torch::Tensor keep =
        c.mask.defined() ? c.mask.to(torch::kBool) : torch::ones(c.ids.sizes(), torch::kBool);
    const torch::Tensor lc = run_forward(cpu, c, torch::kCPU).logits, lg = run_forward(gpu, c, kCuda).logits;
    const double diff = kept_diff(lg, lc, keep);
    if (!bf16) {
      r.at_most(c.name + "_logits_max_abs_diff", diff, 1e-4);
      continue;
    }
    const torch::Tensor le = run_forward(exact, c, torch::kCPU).logits;
    const double scale = kept_absmax(le, keep);
    r.at_most(c.name + "_logits_rel_diff", diff / scale, kBf16Logits);
    r.number(c.name + "_cpu_rel_err", kept_diff(lc, le, keep) / scale);
    r.number(c.name + "_cuda_rel_err", kept_diff(lg, le, keep) / scale);
  }
  // Loss and gradients on the long case, 4 labels of each row ignored (−100).
  const Case& c = cases[1];
  torch::Tensor labels = c.ids.clone();
  labels.slice(1, 10, 14).fill_(-100);
  const double lc = loss_backward(cpu, c, labels, torch::kCPU), lg = loss_backward(gpu, c, labels, kCuda);
  const auto [gdiff, gscale] = grad_diff(gpu, cpu);
  r.number("loss", lc);
  r.number("grad_max_abs", gscale);
  if (!bf16) {
    r.at_most("loss_abs_diff", std::abs(lc - lg), 1e-4);
    r.at_most("grad_max_abs_diff", gdiff, 1e-4);
  } else {
    r.at_most("loss_rel_diff", std::abs(lc - lg) / std::abs(lc), kBf16Loss);
    r.at_most("grad_rel_diff", gdiff / gscale, kBf16Grad);
  }
}

// --- generation --------------------------------------------------------------------------------------------

void generate_step(Result& r) {
  const model::GptNeoConfig cfg = tiny_config();
  model::CausalLm cpu = model::make_causal_lm(cfg), gpu = model::make_causal_lm(cfg, kCuda);
  cpu->reset_parameters(7);
  copy_parameters(gpu, cpu);
  // A left-padded prompt batch: 3 rows of 10 tokens with 0, 3 and 6 pads.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(13);
  torch::Tensor ids = at::randint(0, cfg.vocab_size, {3, 10}, gen, torch::kLong);
  torch::Tensor mask = torch::ones({3, 10}, torch::kLong);
  mask[1].slice(0, 0, 3).zero_();
  mask[2].slice(0, 0, 6).zero_();
  ids.masked_fill_(mask == 0, 0);
  // EOS = the 5th token greedy decoding gives row 0: row 0 stops early while the others go on, so the
  // stopping and padding logic runs as well.
  const int64_t eos =
      model::generate(cpu, ids, mask, {.max_new_tokens = 24}).sequences[0][14].item<int64_t>();
  r.number("eos_token_id", static_cast<double>(eos));
  const std::vector<std::pair<std::string, model::GenerateOptions>> modes = {
      {"greedy", {.max_new_tokens = 24, .eos_token_ids = {eos}}},
      {"beam3", {.max_new_tokens = 12, .num_beams = 3, .eos_token_ids = {eos}}}};
  for (const auto& [name, o] : modes) {
    const model::GenerateResult want = model::generate(cpu, ids, mask, o);
    const model::GenerateResult got = model::generate(gpu, ids.to(kCuda), mask.to(kCuda), o);
    const torch::Tensor seq = got.sequences.cpu();
    r.number(name + "_new_tokens", static_cast<double>(want.sequences.size(1) - ids.size(1)));
    if (!seq.sizes().equals(want.sequences.sizes())) {
      r.fail(
          fmt::format("{}: CUDA gave {} tokens per row, CPU {}", name, seq.size(1), want.sequences.size(1)));
      continue;
    }
    r.at_most(name + "_ids_differing", (seq != want.sequences).sum().item<double>(), 0);
    if (want.scores.defined())
      r.at_most(name + "_score_max_abs_diff", max_abs_diff(got.scores, want.scores), 1e-4);
  }
}

// --- SDPA kernel choice ------------------------------------------------------------------------------------

std::string backend_name(int64_t choice) {
  switch (static_cast<at::SDPBackend>(choice)) {
    case at::SDPBackend::error:
      return "error";
    case at::SDPBackend::math:
      return "math";
    case at::SDPBackend::flash_attention:
      return "flash";
    case at::SDPBackend::efficient_attention:
      return "efficient";
    case at::SDPBackend::cudnn_attention:
      return "cudnn";
    case at::SDPBackend::overrideable:
      return "overrideable";
  }
  return fmt::format("unknown({})", choice);
}

// Milliseconds per call of fn, after 3 warm-up calls.
double time_ms(const std::function<void()>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn();
  torch::cuda::synchronize();
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) fn();
  torch::cuda::synchronize();
  return 1e3 * seconds_since(t0) / reps;
}

// GPT-Neo 125M attention at the training shape: B 8, H 12, T 200, D 64, scale 1 (GPT-Neo does not divide by
// √D). causal = an unpadded batch (CausalLm passes is_causal, no mask); masked = a padded batch (the additive
// [B, 1, T, K] mask build_mask makes); decode = one new query against 200 cached keys, no mask.
void sdpa_step(Result& r) {
  const int64_t b = 8, h = 12, t = 200, d = 64;
  for (const auto dtype : {torch::kBFloat16, torch::kFloat}) {
    const auto opts = torch::TensorOptions().dtype(dtype).device(kCuda);
    const torch::Tensor q = torch::randn({b, h, t, d}, opts), k = torch::randn({b, h, t, d}, opts),
                        v = torch::randn({b, h, t, d}, opts);
    const torch::Tensor above = torch::ones({t, t}, opts.dtype(torch::kBool)).triu(1);
    const torch::Tensor mask = torch::zeros({b, 1, t, t}, opts).masked_fill(above, -INFINITY);
    const torch::Tensor q1 = q.narrow(2, t - 1, 1).contiguous();
    struct Shape {
      std::string name;
      torch::Tensor q;
      std::optional<torch::Tensor> mask;
      bool causal;
    };
    const std::string tag = dtype == torch::kBFloat16 ? "bf16" : "fp32";
    for (const Shape& s : {Shape{"causal", q, std::nullopt, true}, Shape{"masked", q, mask, false},
                           Shape{"decode", q1, std::nullopt, false}}) {
      const int64_t choice = at::_fused_sdp_choice(s.q, k, v, s.mask, 0.0, s.causal, 1.0);
      r.note(s.name + "_" + tag + "_kernel", backend_name(choice));
      r.number(s.name + "_" + tag + "_ms",
               time_ms([&] { at::scaled_dot_product_attention(s.q, k, v, s.mask, 0.0, s.causal, 1.0); }, 20));
    }
  }
}

// --- ZeRO --------------------------------------------------------------------------------------------------

void zero_step(Result& r) {
  for (int stage = 0; stage <= 2; ++stage) {
    auto cpu_comm = comm::make_self(), gpu_comm = comm::make_self();
    const ZeroRun want = train_tiny(*cpu_comm, torch::kCPU, stage, 0, kZeroBatch);
    const ZeroRun got = train_tiny(*gpu_comm, kCuda, stage, 0, kZeroBatch);
    compare_zero(r, fmt::format("stage{}_", stage), got, want);
  }
}

// --- throughput --------------------------------------------------------------------------------------------

// Seconds per call of fn: 3 warm-up calls, then `reps` timed between device synchronisations.
double time_steps(const std::function<void()>& fn, int reps) {
  return time_ms(fn, reps) / 1e3;
}

// A training step as lethe's trainer takes it: forward to the final hidden states, chunked CE, ZeRO-0
// backward and AdamW step, batch 8 × 200 tokens of the 125M shape. Returns tokens/s.
double train_tokens_per_s(torch::ScalarType dtype) {
  model::CausalLm m = model::make_causal_lm(released_config(12, 768, 12), kCuda, dtype);
  m->reset_parameters(0);
  auto self = comm::make_self();
  zero::EngineOptions o;
  o.stage = 0;
  zero::ZeroEngine engine(*m, *self, o);
  const int64_t b = 8, t = 200;
  const torch::Tensor ids =
      torch::randint(0, 50257, {b, t}, torch::TensorOptions().dtype(torch::kLong).device(kCuda));
  const double labels = static_cast<double>(b * (t - 1));
  const double s = time_steps(
      [&] {
        const torch::Tensor hidden = m->forward(ids, {.compute_logits = false}).last_hidden_state;
        engine.backward(model::next_token_ce_sum(hidden, m->head_weight(), ids) / labels);
        engine.step(1e-5);
      },
      10);
  return static_cast<double>(b * t) / s;
}

// Greedy generation, batch 8, 100-token prompts, 100 new tokens (no EOS), 125M shape. Returns new tokens/s.
double generate_tokens_per_s(torch::ScalarType dtype) {
  model::CausalLm m = model::make_causal_lm(released_config(12, 768, 12), kCuda, dtype);
  m->reset_parameters(0);
  const torch::Tensor ids =
      torch::randint(0, 50257, {8, 100}, torch::TensorOptions().dtype(torch::kLong).device(kCuda));
  model::generate(m, ids, {}, {.max_new_tokens = 4});  // warm-up: kernels, allocator
  torch::cuda::synchronize();
  const auto t0 = Clock::now();
  const model::GenerateResult out = model::generate(m, ids, {}, {.max_new_tokens = 100});
  torch::cuda::synchronize();
  return static_cast<double>(8 * (out.sequences.size(1) - 100)) / seconds_since(t0);
}

void throughput_step(Result& r) {
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const std::string tag = dtype == torch::kFloat ? "fp32" : "bf16";
    r.number("train_" + tag + "_tokens_per_s", train_tokens_per_s(dtype));
    r.number("generate_" + tag + "_tokens_per_s", generate_tokens_per_s(dtype));
  }
}

// --- memory of a 2.7B ICU step -----------------------------------------------------------------------------

namespace alloc = c10::cuda::CUDACachingAllocator;

// (peak allocated, peak reserved, allocated now) of GPU 0, bytes.
std::array<double, 3> device_memory() {
  const auto stats = alloc::getDeviceStats(0);
  const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return {static_cast<double>(stats.allocated_bytes[all].peak),
          static_cast<double>(stats.reserved_bytes[all].peak),
          static_cast<double>(stats.allocated_bytes[all].current)};
}

void record_memory(Result& r, const std::string& phase) {
  const auto [allocated, reserved, now] = device_memory();
  r.number(phase + "_peak_allocated_bytes", allocated);
  r.number(phase + "_peak_reserved_bytes", reserved);
  r.number(phase + "_end_allocated_bytes", now);
  std::cout << fmt::format(
                   "  {}: peak allocated {:.2f} GiB, peak reserved {:.2f} GiB, {:.2f} GiB allocated after",
                   phase, allocated / (1 << 30), reserved / (1 << 30), now / (1 << 30))
            << std::endl;
}

// GPT-Neo 2.7B (hidden 2560, 32 layers, 20 heads) in bf16 on the GPU, its frozen bf16 reference, ZeRO-2 at
// world size 1 (fp32 master + Adam state + owned fp32 gradient: 16 bytes per parameter), then one ICU step on
// 4 forget and 4 neighbour sequences of 200 tokens: two forwards to hidden states with chunked CE, the KL
// term's full logits against the reference's, backward, AdamW. "build" = models and engine, "step" = the step
// alone.
void memory_step(Result& r) {
  const model::GptNeoConfig cfg = released_config(32, 2560, 20);
  alloc::emptyCache();
  alloc::resetPeakStats(0);
  auto t0 = Clock::now();
  model::CausalLm m = model::make_causal_lm(cfg, kCuda, torch::kBFloat16);
  m->reset_parameters(0);  // HF's init: torch's default init can overflow a 32-layer bf16 forward
  model::CausalLm ref = model::make_causal_lm(cfg, kCuda, torch::kBFloat16);
  copy_parameters(ref, m);
  for (auto& p : ref->parameters()) p.requires_grad_(false);
  auto self = comm::make_self();
  zero::EngineOptions o;
  o.stage = 2;
  zero::ZeroEngine engine(*m, *self, o);
  torch::cuda::synchronize();
  r.number("build_seconds", seconds_since(t0));
  record_memory(r, "build");
  alloc::resetPeakStats(0);

  const int64_t pad = cfg.eos_token_id;  // ids below it: no padding
  const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(kCuda);
  const torch::Tensor forget = torch::randint(0, pad, {4, 200}, i64),
                      neighbour = torch::randint(0, pad, {4, 200}, i64);
  const unlearn::Counts counts = unlearn::count_labels(forget, neighbour, pad);
  t0 = Clock::now();
  const unlearn::Terms terms =
      unlearn::compute_terms(unlearn::Method::kIcu, {}, m, &ref, forget, neighbour, pad, counts);
  engine.backward(terms.loss);
  const zero::StepResult step = engine.step(1e-5);
  torch::cuda::synchronize();
  r.number("step_seconds", seconds_since(t0));
  record_memory(r, "step");
  const zero::MemoryReport mem = engine.memory();
  r.number("parameters", static_cast<double>(engine.layout().numel()));
  r.number("engine_param_bytes", static_cast<double>(mem.param_bytes));
  r.number("engine_optimizer_bytes", static_cast<double>(mem.optimizer_bytes));
  r.number("engine_grad_bytes_peak", static_cast<double>(mem.grad_bytes_peak));
  r.number("loss", terms.loss.item<double>());
  r.number("grad_norm", step.grad_norm);
}

}  // namespace

std::vector<Step> model_steps() {
  return {
      {"parity_fp32",
       "tiny GPT-Neo, CUDA vs CPU in fp32: logits (left-padded batch, past the window, causal), chunked CE "
       "loss and gradients within 1e-4",
       [](Result& r) { parity(r, torch::kFloat); }},
      {"parity_bf16",
       "the same in bf16 (CUDA bf16 vs CPU bf16): logits within 2 % of their scale, loss 1 %, gradients 5 %",
       [](Result& r) { parity(r, torch::kBFloat16); }},
      {"generate",
       "greedy and 3-beam generation of a left-padded batch, CUDA vs CPU (fp32): identical token ids",
       generate_step},
      {"sdpa_kernel",
       "SDPA backend chosen for GPT-Neo-125M attention (B 8, H 12, T 200, D 64): causal, masked, decode; "
       "bf16, fp32",
       sdpa_step},
      {"zero_cuda_vs_cpu",
       "ZeroEngine stages 0, 1, 2 at world size 1, 5 AdamW steps of the tiny model, CUDA vs CPU: parameters "
       "within 1e-5",
       zero_step},
      {"throughput",
       "125M shape: training step tokens/s (fp32, bf16; batch 8 x 200; ZeRO-0) and greedy generation "
       "tokens/s (batch 8, prompt 100, 100 new)",
       throughput_step},
      {"memory_2p7b_step",
       "GPT-Neo 2.7B bf16 + frozen bf16 reference, ZeRO-2 at world size 1, one ICU step (4+4 x 200 tokens): "
       "device memory peaks",
       memory_step},
  };
}

}  // namespace lethe::device_check
