#include "model/lm_loss.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace lethe::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Labels of each row of the flattened [N, C] hidden state: the next token, −100 on every sequence's last
// position (nothing follows it). [B, T] → [N].
torch::Tensor row_labels(const torch::Tensor& labels) {
  torch::Tensor pad = torch::full({labels.size(0), 1}, -100, labels.options());
  return torch::cat({labels.narrow(1, 1, labels.size(1) - 1), pad}, 1).reshape({-1});
}

// One chunk: h [n, C], labels y [n] (−100 ignored) → fp32 logits [n, V] and the per-row NLL [n].
std::pair<torch::Tensor, torch::Tensor> chunk_nll(const torch::Tensor& h, const torch::Tensor& head,
                                                  const torch::Tensor& y, const torch::Tensor& keep) {
  torch::Tensor logits = at::matmul(h, head.t()).to(torch::kFloat);  // [n, V]
  torch::Tensor lse = logits.logsumexp(-1);                          // [n]
  torch::Tensor target = logits.gather(1, y.clamp_min(0).unsqueeze(1)).squeeze(1);
  return {logits, (lse - target) * keep};
}

struct ChunkedCeSum : torch::autograd::Function<ChunkedCeSum> {
  // hidden [N, C], head [V, C], y [N] → scalar.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& head,
                               const torch::Tensor& y, int64_t chunk, bool grads) {
    const int64_t n = hidden.size(0);
    torch::Tensor total = torch::zeros({}, hidden.options().dtype(torch::kFloat));
    torch::Tensor grad_hidden, grad_head;
    if (grads) {
      grad_hidden = torch::empty_like(hidden);
      grad_head = torch::zeros(head.sizes(), head.options().dtype(torch::kFloat));
    }
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t len = std::min(chunk, n - b);
      torch::Tensor h = hidden.narrow(0, b, len), yc = y.narrow(0, b, len);
      torch::Tensor keep = (yc != -100).to(torch::kFloat);
      auto [logits, nll] = chunk_nll(h, head, yc, keep);
      total.add_(nll.sum());
      if (!grads) continue;
      // d nll / d logits = softmax − one-hot, zero on ignored rows; back to the model dtype as the plain
      // path's .to(kFloat) backward does.
      torch::Tensor d = logits.softmax(-1);
      d.scatter_add_(1, yc.clamp_min(0).unsqueeze(1), -torch::ones({len, 1}, d.options()));
      d.mul_(keep.unsqueeze(1));
      torch::Tensor dl = d.to(hidden.scalar_type());
      grad_hidden.narrow(0, b, len).copy_(at::matmul(dl, head));
      grad_head.add_(at::matmul(dl.t(), h).to(torch::kFloat));
    }
    if (grads) ctx->save_for_backward({grad_hidden, grad_head.to(head.scalar_type())});
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = grad_out[0];  // scalar
    return {saved[0] * g.to(saved[0].scalar_type()), saved[1] * g.to(saved[1].scalar_type()), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor next_token_ce_sum(const torch::Tensor& hidden, const torch::Tensor& head,
                                const torch::Tensor& labels, int64_t chunk) {
  TORCH_CHECK(hidden.dim() == 3 && labels.dim() == 2 && hidden.size(0) == labels.size(0) &&
                  hidden.size(1) == labels.size(1),
              "next_token_ce_sum: hidden [B, T, C] and labels [B, T] expected, got ", hidden.sizes(), " and ",
              labels.sizes());
  const int64_t c = hidden.size(2);
  if (chunk <= 0) chunk = loss_chunk_rows(head.size(0));
  // Gradients are worked out during the forward pass only when a backward pass can follow.
  const bool grads = torch::GradMode::is_enabled() && (hidden.requires_grad() || head.requires_grad());
  return ChunkedCeSum::apply(hidden.reshape({-1, c}), head, row_labels(labels), chunk, grads);
}

torch::Tensor next_token_logprobs_chunked(const torch::Tensor& hidden, const torch::Tensor& head,
                                          const torch::Tensor& ids, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t b = hidden.size(0), t = hidden.size(1), c = hidden.size(2);
  if (chunk <= 0) chunk = loss_chunk_rows(head.size(0));
  torch::Tensor h = hidden.narrow(1, 0, t - 1).reshape({-1, c});
  torch::Tensor y = ids.narrow(1, 1, t - 1).reshape({-1});
  torch::Tensor out = torch::empty({h.size(0)}, hidden.options().dtype(torch::kFloat));
  for (int64_t r = 0; r < h.size(0); r += chunk) {
    const int64_t len = std::min(chunk, h.size(0) - r);
    torch::Tensor yc = y.narrow(0, r, len);
    auto [logits, nll] = chunk_nll(h.narrow(0, r, len), head, yc, torch::ones({len}, out.options()));
    out.narrow(0, r, len).copy_(-nll);
  }
  return out.view({b, t - 1});
}

}  // namespace lethe::model
