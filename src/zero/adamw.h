// AdamW (decoupled weight decay, Loshchilov & Hutter) over a list of parameters, stepping all of them with
// libtorch's fused multi-tensor kernel: one pass over p, g, m, v per step instead of ~10 elementwise ops per
// tensor. Same update as torch.optim.AdamW (amsgrad off).
#pragma once

#include <vector>

#include <torch/types.h>

namespace lethe::zero {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool operator==(const AdamWOptions&) const = default;
};

class AdamW {
 public:
  AdamW(std::vector<torch::Tensor> params, AdamWOptions options);
  // Parameters whose .grad() is undefined are skipped this step (as torch.optim does).
  void step();
  void zero_grad();
  void set_lr(double lr) { options_.lr = lr; }
  // Bytes of optimizer state (m and v, each in its parameter's dtype): 8 per element for fp32 parameters.
  int64_t state_bytes() const;

 private:
  AdamWOptions options_;
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
};

}  // namespace lethe::zero
