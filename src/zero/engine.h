// Data-parallel training state sharded ZeRO-style (stages 0-2) over a Communicator.
//
// The model's parameters become views into one flat buffer (FlatLayout order) that every rank holds in full.
// Each rank keeps optimizer state only for the flat range it owns:
//   stage 0  plain data parallelism: gradients all-reduced, every rank owns (and steps) the whole buffer;
//   stage 1  gradients accumulate locally in a full flat buffer and are reduce-scattered (bucket by bucket)
//            once per optimizer step; fp32 master + Adam m, v exist only for the owned slice;
//   stage 2  as stage 1, but each bucket is reduce-scattered as soon as backward has produced all of its
//            gradients (a post-accumulate-grad hook per parameter), every micro-step; the parameters'
//            gradients are freed right after, so only the owned fp32 slice persists.
// After AdamW updates the owned fp32 master slice, it is copied into the parameter buffer (cast to the
// parameter dtype) and all-gathered bucket by bucket, so every rank again holds identical parameters.
//
// Precision. Masters, Adam moments and the reduced owned gradient are fp32 whatever the parameter dtype.
// With 16-bit parameters, stages 0/1 accumulate micro-step gradients in an fp32 flat buffer (a hook adds each
// parameter's fresh gradient there and frees it), unless fp32_accumulation is off; stage 2 always packs its
// buckets in fp32. reduce_bf16 packs what is reduced as bf16 instead (half the bytes on NCCL). fp16
// parameters need loss scaling: backward() multiplies the loss by the current scale, step() divides the
// reduced gradient by it, and a step whose gradient is not finite is skipped with the scale halved (torch's
// GradScaler rule; the scale doubles after growth_interval finite steps).
//
// The loss handed to backward() must already be normalised for the *global* batch (sum over this rank's
// tokens / tokens in the global batch): gradients are summed over ranks, never averaged, so the update is
// the same at any world size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "comm/communicator.h"
#include "zero/adamw.h"
#include "zero/flat_layout.h"

namespace lethe::zero {

// Dynamic loss scaling (torch.amp.GradScaler's defaults).
struct LossScaling {
  bool enabled = false;
  double initial_scale = 65536.0, growth_factor = 2.0, backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // finite steps in a row before the scale grows
};

struct EngineOptions {
  int stage = 1;
  int64_t bucket_numel = 16'000'000;  // elements per communication bucket (64 MB in fp32)
  zero::AdamWOptions adam;            // lr is given per step
  double max_grad_norm = 1.0;         // global-norm clipping; 0 = off
  int64_t align = 16;                 // FlatLayout alignment (elements)
  bool fp32_accumulation = true;      // stages 0/1 with 16-bit parameters: accumulate in fp32
  bool reduce_bf16 = false;           // reduce gradients as bf16
  LossScaling loss_scaling;           // required for fp16 parameters
};

struct StepResult {
  double grad_norm = 0;          // global L2 norm before clipping (of the unscaled gradient)
  double grad_norm_clipped = 0;  // after clipping
  bool skipped = false;          // loss scaling: the gradient overflowed, no update was made
  double loss_scale = 1;         // the scale this step's backward passes used
};

struct MemoryReport {
  int64_t param_bytes = 0;      // the flat parameter buffer (full on every rank)
  int64_t optimizer_bytes = 0;  // fp32 master + m + v of the owned range
  int64_t grad_bytes_peak = 0;  // most gradient bytes alive at once during the last step (incl. buckets)
  int64_t padding = 0;          // padding elements this rank owns
};

// The model's trainable parameters with their HF names, tied tensors once (first name wins), model order.
std::vector<std::pair<std::string, torch::Tensor>> unique_parameters(const torch::nn::Module& model);

class ZeroEngine {
 public:
  ZeroEngine(torch::nn::Module& model, comm::Communicator& comm, EngineOptions options);
  ~ZeroEngine();
  ZeroEngine(const ZeroEngine&) = delete;
  ZeroEngine& operator=(const ZeroEngine&) = delete;

  // loss.backward() for one micro-step; stage 2 reduces buckets while it runs.
  void backward(const torch::Tensor& loss);
  // Ends the optimizer step: reduce (stages 0/1), clip, AdamW at `lr`, all-gather; gradients reset.
  StepResult step(double lr);

  const FlatLayout& layout() const { return layout_; }
  const EngineOptions& options() const { return options_; }
  comm::Communicator& comm() const { return comm_; }
  Span owned() const { return owned_; }
  // Owned optimizer state, each [owned().size()] fp32. Writable: resume fills them.
  torch::Tensor& master() { return master_; }
  torch::Tensor& exp_avg() { return exp_avg_; }
  torch::Tensor& exp_avg_sq() { return exp_avg_sq_; }
  const torch::Tensor& master() const { return master_; }
  const torch::Tensor& exp_avg() const { return exp_avg_; }
  const torch::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  int64_t adam_steps() const;
  void set_adam_steps(int64_t steps);
  // Loss scaling state (scale 1, 0 steps when off); checkpoints save and restore it.
  double loss_scale() const { return scale_; }
  int64_t finite_steps() const { return finite_steps_; }
  void set_loss_scale(double scale, int64_t finite_steps);
  // After master() was overwritten (resume): parameters = cast(master) on every rank.
  void sync_parameters_from_master();
  // The full flat parameter buffer [padded_numel] in the parameter dtype.
  const torch::Tensor& flat_parameters() const { return flat_param_; }

  MemoryReport memory() const;
  // Message bytes one optimizer step hands to reduce-scatter and all-gather (stages 1-2) or all-reduce
  // (stage 0) with `micro_steps` micro-steps; CommStats must show exactly this.
  int64_t predicted_reduce_bytes(int64_t micro_steps) const;
  int64_t predicted_gather_bytes() const;

  // Gradient hook entry point (public for the hook object only).
  void on_gradient_ready(size_t tensor);

 private:
  struct Pending;
  void launch_bucket(size_t b);
  void finish_oldest();
  void flush_buckets();
  void note_grad_bytes(int64_t delta);  // parameter gradients alive between backward and their bucket
  // A bucket of one whole fp32 parameter: reduce-scattered straight from that parameter's gradient.
  bool lone_bucket(const Bucket& bk) const;
  torch::Tensor owned_part(const torch::Tensor& t, Span s) const;
  void reduce_stage01();
  // Loss scaling: whether this step's gradient is usable; on overflow, zeroes it and lowers the scale.
  bool accept_scaled_step(double norm_scaled, StepResult& r);

  comm::Communicator& comm_;
  EngineOptions options_;
  std::vector<torch::Tensor> params_;
  FlatLayout layout_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // tensor -> bucket
  Span owned_;
  torch::Tensor flat_param_;  // [padded] parameter dtype
  torch::Tensor flat_grad_;   // stages 0/1: [padded] accumulation dtype (params' .grad views if it is theirs)
  bool hooked_ = false;       // gradients leave the parameters through hooks (stage 2, fp32 accumulation)
  torch::ScalarType wire_ = torch::kFloat;  // dtype of what is reduced
  torch::Tensor grad_own_;                  // [owned] fp32: reduced gradient of the owned range
  torch::Tensor master_, exp_avg_, exp_avg_sq_, step_count_;
  // Stage 2 bookkeeping.
  std::vector<int64_t> ready_;
  torch::Tensor send_pool_[2], recv_pool_[2];  // [largest bucket], [largest owned part of a bucket], wire_
  int next_slot_ = 0;
  size_t next_ = 0;  // next bucket to launch, in descending bucket order (the order backward produces them)
  std::vector<std::unique_ptr<Pending>> pending_;
  int64_t grad_bytes_alive_ = 0, grad_bytes_peak_ = 0, last_grad_bytes_peak_ = 0;
  double scale_ = 1;
  int64_t finite_steps_ = 0;
};

}  // namespace lethe::zero
