// The precision paths on CUDA against the same runs on the CPU (tiny GPT-Neo, world size 1, the ZeRO run of
// device_check.cpp): fp16 with dynamic loss scaling, fp32 accumulation of bf16 micro-step gradients, bf16
// gradient reduction, activation checkpointing.
#include <fmt/format.h>

#include "comm/local.h"
#include "device_check.h"

namespace lethe::device_check {
namespace {

const torch::Device kCuda(torch::kCUDA, 0);

// Runs `o` on the CPU and on CUDA and records the largest parameter difference under `tag`.
void compare(Result& r, const std::string& tag, int stage, const TinyOptions& o, double limit) {
  auto cpu_comm = comm::make_self(), gpu_comm = comm::make_self();
  const ZeroRun want = train_tiny(*cpu_comm, torch::kCPU, stage, 0, kZeroBatch, o);
  const ZeroRun got = train_tiny(*gpu_comm, kCuda, stage, 0, kZeroBatch, o);
  r.at_most(tag + "_max_abs_diff", max_abs_diff(got.final, want.final), limit);
  if (o.loss_scale > 0) {
    r.number(tag + "_skipped_cpu", static_cast<double>(want.skipped));
    r.number(tag + "_skipped_cuda", static_cast<double>(got.skipped));
    if (got.skipped != want.skipped)
      r.fail(fmt::format("{}: CUDA skipped {} steps, the CPU {}", tag, got.skipped, want.skipped));
    if (got.skipped == 0) r.fail(tag + ": no step overflowed, so the skip path was not exercised");
    // Some steps must also have trained, or the comparison proves nothing.
    if (!(max_abs_diff(want.final, want.initial) > 1e-3)) r.fail(tag + ": every step was skipped");
  }
}

void precision_step(Result& r) {
  // fp16 starting at scale 2^20: the first steps overflow and are skipped, then it trains. fp16 keeps 11
  // significant bits: CUDA and the CPU round differently, so 2e-2 (lr 1e-2 over the steps taken).
  compare(r, "fp16_loss_scaling_zero2", 2, {.dtype = torch::kHalf, .loss_scale = 1 << 20}, 2e-2);
  // bf16 parameters, two micro-steps accumulated in fp32 (stage 1): bf16 rounding only.
  compare(r, "bf16_fp32_accumulation_zero1", 1, {.dtype = torch::kBFloat16, .micro_steps = 2}, 2e-2);
  // fp32 parameters, gradients reduced as bf16 (stage 2 packs bf16 buckets on the device).
  compare(r, "reduce_bf16_zero2", 2, {.reduce_bf16 = true}, 1e-3);
  // Activation checkpointing: recomputation on CUDA against the CPU run without it, fp32.
  auto cpu_comm = comm::make_self(), gpu_comm = comm::make_self();
  const ZeroRun want = train_tiny(*cpu_comm, torch::kCPU, 2, 0, kZeroBatch);
  const ZeroRun got = train_tiny(*gpu_comm, kCuda, 2, 0, kZeroBatch, {.activation_checkpointing = true});
  compare_zero(r, "activation_checkpointing_zero2_", got, want);
}

}  // namespace

std::vector<Step> precision_steps() {
  return {
      {"precision",
       "tiny GPT-Neo, CUDA vs CPU: fp16 + dynamic loss scaling at ZeRO-2 (same skipped steps, within 2e-2), "
       "bf16 with fp32 accumulation at ZeRO-1 (2e-2), bf16 reduction at ZeRO-2 (1e-3), activation "
       "checkpointing at ZeRO-2 (1e-5)",
       precision_step}};
}

}  // namespace lethe::device_check
