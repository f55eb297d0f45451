#include "zero/adamw.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

namespace lethe::zero {

AdamW::AdamW(std::vector<torch::Tensor> params, AdamWOptions options)
    : options_(options), params_(std::move(params)) {
  for (const auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    // The fused kernel keeps a per-tensor step count as a float tensor (as torch.optim does).
    steps_.push_back(torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(p.device())));
  }
}

void AdamW::step() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> p, g, m, v, s;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    p.push_back(params_[i]);
    g.push_back(params_[i].grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
    s.push_back(steps_[i]);
  }
  if (p.empty()) return;
  // _fused_adamw_ increments nothing itself: torch.optim bumps the step tensors first.
  at::_foreach_add_(s, 1.0);
  at::_fused_adamw_(p, g, m, v, /*max_exp_avg_sqs=*/{}, s, options_.lr, options_.beta1, options_.beta2,
                    options_.weight_decay, options_.eps, /*amsgrad=*/false, /*maximize=*/false);
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < exp_avg_.size(); ++i) n += exp_avg_[i].nbytes() + exp_avg_sq_[i].nbytes();
  return n;
}

}  // namespace lethe::zero
