#include "zero/engine.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "core/memory.h"

namespace lethe::zero {
namespace {

// Calls back into the engine once backward has accumulated this parameter's gradient for the micro-step.
class GradReadyHook : public torch::autograd::PostAccumulateGradHook {
 public:
  GradReadyHook(ZeroEngine* engine, size_t tensor) : engine_(engine), tensor_(tensor) {}
  void operator()(const torch::autograd::Variable&) override { engine_->on_gradient_ready(tensor_); }

 private:
  ZeroEngine* engine_;
  size_t tensor_;
};

// The part of an owned-range tensor [owned.size()] that covers flat range `s` (inside owned).
torch::Tensor owned_part_of(const torch::Tensor& t, Span owned, Span s) {
  return s.size() == 0 ? t.narrow(0, 0, 0) : t.narrow(0, s.begin - owned.begin, s.size());
}

torch::Tensor view_of(const torch::Tensor& flat, int64_t offset, const torch::Tensor& like) {
  return flat.narrow(0, offset, like.numel()).view(like.sizes());
}

}  // namespace

// A stage-2 bucket whose reduce-scatter is in flight: the packed gradients it reads and the owned piece it
// fills.
struct ZeroEngine::Pending {
  std::unique_ptr<comm::Work> work;
  torch::Tensor send, recv;  // views of the slot's pooled buffers (or of a lone parameter's gradient)
  Span mine;                 // flat range of recv
  int slot = 0;
};

std::vector<std::pair<std::string, torch::Tensor>> unique_parameters(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::unordered_set<const void*> seen;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (!seen.insert(item.value().unsafeGetTensorImpl()).second) continue;
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

ZeroEngine::ZeroEngine(torch::nn::Module& model, comm::Communicator& comm, EngineOptions options)
    : comm_(comm), options_(options) {
  TORCH_CHECK(options_.stage >= 0 && options_.stage <= 2, "ZeRO stage must be 0, 1 or 2");
  TORCH_CHECK(!options_.loss_scaling.enabled || options_.loss_scaling.initial_scale >= 1,
              "ZeroEngine: the initial loss scale must be at least 1");
  std::vector<TensorSpec> specs;
  for (auto& [name, p] : unique_parameters(model)) {
    specs.push_back({name, p.sizes().vec()});
    params_.push_back(p);
  }
  TORCH_CHECK(!params_.empty(), "ZeroEngine: the model has no trainable parameters");
  layout_ = FlatLayout(std::move(specs), comm_.size(), options_.align);
  buckets_ = layout_.buckets(options_.bucket_numel);
  bucket_of_.resize(params_.size());
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (size_t i = buckets_[b].first_tensor; i < buckets_[b].end_tensor; ++i) bucket_of_[i] = b;
  owned_ = options_.stage == 0 ? Span{0, layout_.padded_numel()} : layout_.slice(comm_.rank());

  torch::NoGradGuard no_grad;
  const auto dtype = params_[0].scalar_type();
  flat_param_ = torch::zeros({layout_.padded_numel()}, params_[0].options().dtype(dtype));
  for (size_t i = 0; i < params_.size(); ++i) {
    TORCH_CHECK(params_[i].scalar_type() == dtype, "ZeroEngine: parameters must share one dtype");
    torch::Tensor v = view_of(flat_param_, layout_.offset(i), params_[i]);
    v.copy_(params_[i]);
    params_[i].set_data(v);
  }
  // The model's per-tensor storage is free now; hand it back before the optimizer state is allocated, or
  // it stays resident in the heap for the whole run (core/memory.h keeps freed memory by default).
  release_free_memory();
  const auto f32 = flat_param_.options().dtype(torch::kFloat);
  master_ = flat_param_.narrow(0, owned_.begin, owned_.size()).to(torch::kFloat).clone();
  exp_avg_ = torch::zeros({owned_.size()}, f32);
  exp_avg_sq_ = torch::zeros({owned_.size()}, f32);
  step_count_ = torch::zeros({}, f32);
  grad_own_ = torch::zeros({owned_.size()}, f32);
  if (options_.loss_scaling.enabled) scale_ = options_.loss_scaling.initial_scale;
  const bool low_precision = dtype != torch::kFloat;
  const auto accumulate =
      options_.stage == 2 || (low_precision && options_.fp32_accumulation) ? torch::kFloat : dtype;
  wire_ = options_.reduce_bf16 ? torch::kBFloat16 : accumulate;
  hooked_ = options_.stage == 2 || accumulate != dtype;
  if (options_.stage < 2) {
    flat_grad_ = torch::zeros({layout_.padded_numel()}, flat_param_.options().dtype(accumulate));
    // Same dtype: backward accumulates straight into the flat buffer (AccumulateGrad adds in place into a
    // defined grad). fp32 accumulation of 16-bit gradients: the hooks below add each one in.
    if (!hooked_)
      for (size_t i = 0; i < params_.size(); ++i)
        params_[i].mutable_grad() = view_of(flat_grad_, layout_.offset(i), params_[i]);
  } else {
    ready_.assign(buckets_.size(), 0);
    // Send buffers only for buckets that need packing.
    int64_t largest = 0, largest_owned = 0;
    for (const Bucket& bk : buckets_) {
      if (!lone_bucket(bk)) largest = std::max(largest, bk.span.size());
      largest_owned = std::max(largest_owned, bk.span.intersect(owned_).size());
    }
    for (int slot = 0; slot < 2; ++slot) {
      send_pool_[slot] = torch::empty({largest}, f32.dtype(wire_));
      recv_pool_[slot] = torch::empty({largest_owned}, f32.dtype(wire_));
    }
  }
  if (hooked_)
    for (size_t i = 0; i < params_.size(); ++i) {
      params_[i].mutable_grad() = torch::Tensor();
      torch::autograd::impl::set_post_acc_grad_hooks(params_[i], std::make_unique<GradReadyHook>(this, i));
    }
}

ZeroEngine::~ZeroEngine() {
  for (auto& p : params_) {
    if (hooked_) torch::autograd::impl::post_acc_grad_hooks(p).reset();
    p.mutable_grad() = torch::Tensor();
  }
}

bool ZeroEngine::lone_bucket(const Bucket& bk) const {
  return bk.end_tensor == bk.first_tensor + 1 && flat_param_.scalar_type() == torch::kFloat &&
         wire_ == torch::kFloat && params_[bk.first_tensor].numel() == bk.span.size();
}

void ZeroEngine::note_grad_bytes(int64_t delta) {
  grad_bytes_alive_ += delta;
  grad_bytes_peak_ = std::max(grad_bytes_peak_, grad_bytes_alive_);
}

void ZeroEngine::backward(const torch::Tensor& loss) {
  if (options_.stage == 2) {
    std::fill(ready_.begin(), ready_.end(), 0);
    next_ = 0;
  }
  if (options_.loss_scaling.enabled)
    (loss * scale_).backward();
  else
    loss.backward();
  if (options_.stage == 2) flush_buckets();
}

void ZeroEngine::on_gradient_ready(size_t tensor) {
  if (options_.stage < 2) {  // fp32 accumulation: add the fresh 16-bit gradient in and free it
    torch::NoGradGuard no_grad;
    torch::Tensor& g = params_[tensor].mutable_grad();
    if (!g.defined()) return;
    const auto bytes = static_cast<int64_t>(g.nbytes());
    note_grad_bytes(bytes);
    view_of(flat_grad_, layout_.offset(tensor), params_[tensor]).add_(g);
    g = torch::Tensor();
    note_grad_bytes(-bytes);
    return;
  }
  note_grad_bytes(static_cast<int64_t>(params_[tensor].grad().nbytes()));
  const size_t b = bucket_of_[tensor];
  ++ready_[b];
  // Launch in one fixed order (last bucket first, as backward produces them) on every rank, so the
  // collectives match across ranks even if gradients arrive in a different order.
  while (next_ < buckets_.size()) {
    const size_t nb = buckets_.size() - 1 - next_;
    const Bucket& bk = buckets_[nb];
    if (ready_[nb] < static_cast<int64_t>(bk.end_tensor - bk.first_tensor)) break;
    launch_bucket(nb);
  }
}

void ZeroEngine::launch_bucket(size_t b) {
  torch::NoGradGuard no_grad;
  // At most two buckets in flight (DeepSpeed's IPG ping-pong): each uses one of two preallocated buffer
  // pairs, so the transient memory of stage 2 is fixed instead of a fresh allocation per bucket (which
  // fragments the heap and grew resident memory micro-step after micro-step).
  if (pending_.size() >= 2) finish_oldest();
  const Bucket& bk = buckets_[b];
  auto p = std::make_unique<Pending>();
  p->slot = next_slot_;
  next_slot_ ^= 1;
  const size_t first = bk.first_tensor;
  torch::Tensor& g0 = params_[first].mutable_grad();
  if (lone_bucket(bk) && g0.defined() && g0.is_contiguous() && g0.scalar_type() == torch::kFloat) {
    // A bucket of one fp32 parameter (the embedding, typically) is sent from its gradient as it is: no packed
    // copy of the largest tensor. The gradient is released with the bucket.
    p->send = g0.view({-1});
    note_grad_bytes(-static_cast<int64_t>(g0.nbytes()));
    g0 = torch::Tensor();
  } else {
    // Pooled, except for a lone parameter whose gradient could not be sent as it is (unused, non-contiguous).
    p->send = bk.span.size() <= send_pool_[p->slot].numel()
                  ? send_pool_[p->slot].narrow(0, 0, bk.span.size())
                  : torch::empty({bk.span.size()}, flat_param_.options().dtype(wire_));
    if (bk.end_tensor > bk.first_tensor) {
      const int64_t tail = layout_.offset(bk.end_tensor - 1) + params_[bk.end_tensor - 1].numel();
      if (tail < bk.span.end) p->send.narrow(0, tail - bk.span.begin, bk.span.end - tail).zero_();  // padding
    }
    for (size_t i = bk.first_tensor; i < bk.end_tensor; ++i) {
      torch::Tensor& g = params_[i].mutable_grad();
      torch::Tensor dst = p->send.narrow(0, layout_.offset(i) - bk.span.begin, params_[i].numel());
      if (g.defined()) {
        dst.copy_(g.reshape({-1}));
        note_grad_bytes(-static_cast<int64_t>(g.nbytes()));
        g = torch::Tensor();  // freed: this rank keeps only its owned piece
      } else {
        dst.zero_();  // unused parameter: zero gradient
      }
    }
  }
  p->mine = bk.span.intersect(owned_);
  p->recv = recv_pool_[p->slot].narrow(0, 0, p->mine.size());
  p->work = comm_.reduce_scatter_async(p->send, p->recv, layout_.owner_counts(bk.span));
  ++next_;
  pending_.push_back(std::move(p));
}

void ZeroEngine::finish_oldest() {
  std::unique_ptr<Pending> p = std::move(pending_.front());
  pending_.erase(pending_.begin());
  p->work->wait();
  if (p->mine.size() > 0) owned_part(grad_own_, p->mine).add_(p->recv);
}

void ZeroEngine::flush_buckets() {
  while (next_ < buckets_.size()) launch_bucket(buckets_.size() - 1 - next_);
  while (!pending_.empty()) finish_oldest();
}

// Stages 0/1: the accumulated flat gradient reduced into the owned fp32 slice, bucket by bucket, in the wire
// dtype (a bucket-sized cast when it differs from the accumulation dtype).
void ZeroEngine::reduce_stage01() {
  for (const Bucket& bk : buckets_) {
    torch::Tensor g = flat_grad_.narrow(0, bk.span.begin, bk.span.size());
    torch::Tensor sent = g.scalar_type() == wire_ ? g : g.to(wire_);
    if (options_.stage == 0) {
      comm_.all_reduce(sent);
      grad_own_.narrow(0, bk.span.begin, bk.span.size()).copy_(sent);
    } else {
      comm_.reduce_scatter(sent, owned_part(grad_own_, bk.span.intersect(owned_)),
                           layout_.owner_counts(bk.span));
    }
  }
}

bool ZeroEngine::accept_scaled_step(double norm_scaled, StepResult& r) {
  const LossScaling& ls = options_.loss_scaling;
  r.loss_scale = scale_;
  if (std::isfinite(norm_scaled)) {
    r.grad_norm = norm_scaled / scale_;
    grad_own_.mul_(1.0 / scale_);
    if (++finite_steps_ >= ls.growth_interval) {
      scale_ *= ls.growth_factor;
      finite_steps_ = 0;
    }
    return true;
  }
  r.grad_norm = norm_scaled;
  r.skipped = true;
  scale_ *= ls.backoff_factor;
  finite_steps_ = 0;
  if (scale_ < 1.0)
    throw std::runtime_error(fmt::format(
        "the gradient is not finite even with the loss scale below 1 (optimizer step {}): the loss diverged "
        "or fp16 cannot hold it; lower the learning rate or use model.dtype=bfloat16",
        adam_steps() + 1));
  grad_own_.zero_();
  if (options_.stage < 2) flat_grad_.zero_();
  last_grad_bytes_peak_ = grad_bytes_peak_;
  grad_bytes_peak_ = 0;
  return false;
}

StepResult ZeroEngine::step(double lr) {
  torch::NoGradGuard no_grad;
  if (options_.stage < 2) reduce_stage01();
  // Global norm: squares summed over the owned slices, then over ranks. Stage 0 owns everything. The
  // slice's norm is taken in fp32 as torch's clip_grad_norm_ does (an fp64 copy would cost 8 bytes per
  // owned element of transient memory).
  // The squares are summed over ranks on the device communicator, as a one-element device tensor: the one
  // host read of the step is the total (clipping, the divergence check and loss scaling need it).
  torch::Tensor sq = grad_own_.norm().to(torch::kDouble).square().reshape({1});
  if (options_.stage != 0) comm_.all_reduce(sq);
  StepResult r;
  r.grad_norm = std::sqrt(sq.item<double>());
  // Every rank holds the same norm, so every rank decides the same: with loss scaling an overflow skips the
  // step; without, a non-finite norm stops the run before anything non-finite reaches the masters.
  if (options_.loss_scaling.enabled && !accept_scaled_step(r.grad_norm, r)) return r;
  if (!std::isfinite(r.grad_norm))
    throw std::runtime_error(
        fmt::format("the gradient norm is {} at optimizer step {}: the loss diverged (lower "
                    "optimizer.lr, or resume from an earlier checkpoint)",
                    r.grad_norm, adam_steps() + 1));
  r.grad_norm_clipped = r.grad_norm;
  if (options_.max_grad_norm > 0) {
    // torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), clamped to 1, always applied.
    const double coef = std::min(1.0, options_.max_grad_norm / (r.grad_norm + 1e-6));
    grad_own_.mul_(coef);
    r.grad_norm_clipped = r.grad_norm * coef;
  }
  at::_foreach_add_(std::vector<torch::Tensor>{step_count_}, 1.0);
  at::_fused_adamw_({master_}, {grad_own_}, {exp_avg_}, {exp_avg_sq_}, /*max_exp_avg_sqs=*/{}, {step_count_},
                    lr, options_.adam.beta1, options_.adam.beta2, options_.adam.weight_decay,
                    options_.adam.eps,
                    /*amsgrad=*/false, /*maximize=*/false);
  sync_parameters_from_master();

  grad_own_.zero_();
  if (options_.stage < 2) flat_grad_.zero_();
  last_grad_bytes_peak_ = grad_bytes_peak_;
  grad_bytes_peak_ = 0;
  return r;
}

void ZeroEngine::sync_parameters_from_master() {
  torch::NoGradGuard no_grad;
  flat_param_.narrow(0, owned_.begin, owned_.size()).copy_(master_);
  if (options_.stage == 0) return;
  const Span own = layout_.slice(comm_.rank());
  for (const Bucket& bk : buckets_) {
    const Span mine = bk.span.intersect(own);
    comm_.all_gather(flat_param_.narrow(0, mine.begin, mine.size()),
                     flat_param_.narrow(0, bk.span.begin, bk.span.size()), layout_.owner_counts(bk.span));
  }
}

torch::Tensor ZeroEngine::owned_part(const torch::Tensor& t, Span s) const {
  return owned_part_of(t, owned_, s);
}

void ZeroEngine::set_loss_scale(double scale, int64_t finite_steps) {
  TORCH_CHECK(std::isfinite(scale) && scale >= 1 && finite_steps >= 0, "loss scale ", scale, " with ",
              finite_steps, " finite steps: expected a finite scale >= 1");
  scale_ = scale;
  finite_steps_ = finite_steps;
}

int64_t ZeroEngine::adam_steps() const {
  return static_cast<int64_t>(step_count_.item<float>());
}

void ZeroEngine::set_adam_steps(int64_t steps) {
  step_count_.fill_(static_cast<double>(steps));
}

MemoryReport ZeroEngine::memory() const {
  MemoryReport m;
  m.param_bytes = static_cast<int64_t>(flat_param_.nbytes());
  m.optimizer_bytes = static_cast<int64_t>(master_.nbytes() + exp_avg_.nbytes() + exp_avg_sq_.nbytes());
  const int64_t own_grad = static_cast<int64_t>(grad_own_.nbytes());
  int64_t pools = 0;
  for (int slot = 0; slot < 2; ++slot)
    if (send_pool_[slot].defined())
      pools += static_cast<int64_t>(send_pool_[slot].nbytes() + recv_pool_[slot].nbytes());
  // Stage 2 also holds, briefly, the gradients backward produced for the bucket being filled.
  // Stages 0/1 with fp32 accumulation also hold each parameter's 16-bit gradient until its hook adds it in.
  m.grad_bytes_peak = own_grad + (options_.stage < 2 ? static_cast<int64_t>(flat_grad_.nbytes()) +
                                                           (hooked_ ? last_grad_bytes_peak_ : 0)
                                                     : pools + last_grad_bytes_peak_);
  m.padding = owned_.size() - owned_.intersect({0, layout_.numel()}).size();
  return m;
}

int64_t ZeroEngine::predicted_reduce_bytes(int64_t micro_steps) const {
  const int64_t padded = layout_.padded_numel(), wire = static_cast<int64_t>(c10::elementSize(wire_));
  if (options_.stage == 2) return micro_steps * padded * wire;  // every micro-step
  return padded * wire;
}

int64_t ZeroEngine::predicted_gather_bytes() const {
  return options_.stage == 0 ? 0 : layout_.padded_numel() * static_cast<int64_t>(flat_param_.element_size());
}

}  // namespace lethe::zero
