#include "unlearn/objective.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

namespace lethe::unlearn {
namespace {

// Summed next-token CE of `labels` under `logits` (fp32, labels shifted by one, −100 ignored). logits
// [b, T, V], labels [b, T] → scalar.
torch::Tensor ce_sum(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t v = logits.size(-1), t = logits.size(1);
  return torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, t - 1).reshape({-1, v}).to(torch::kFloat), labels.narrow(1, 1, t - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100));
}

// ICU's KL term before averaging: −Σ_positions Σ_v p_v · log(q_v + 1e-12), with p the frozen original
// model's softmax and q the current one, over every position (no shift, no mask), full vocabulary. The
// reference computes it literally with +1e-12 rather than log_softmax; so does this (fp32).
torch::Tensor kl_sum(const torch::Tensor& logits, const torch::Tensor& ref_logits) {
  torch::Tensor p = ref_logits.to(torch::kFloat).softmax(-1);
  torch::Tensor q = logits.to(torch::kFloat).softmax(-1);
  return -(p * (q + 1e-12).log()).sum();
}

}  // namespace

bool needs_reference(Method m) {
  return m == Method::kIcu || m == Method::kLlmu;
}

torch::Tensor pad_masked_labels(const torch::Tensor& ids, int64_t pad_id) {
  return ids.masked_fill(ids == pad_id, -100);
}

Counts count_labels(const torch::Tensor& forget, const torch::Tensor& neighbour, int64_t pad_id) {
  Counts c;
  if (forget.size(0) == 0) return c;
  const int64_t t = forget.size(1);
  auto labels = [&](const torch::Tensor& ids) {
    return static_cast<double>((ids.narrow(1, 1, t - 1) != pad_id).sum().item<int64_t>());
  };
  c.forget_tokens = labels(forget);
  c.neighbour_tokens = labels(neighbour);
  c.forget_as_neighbour_tokens = c.neighbour_tokens;  // the neighbour ids are the labels
  c.positions = static_cast<double>(neighbour.numel());
  return c;
}

Terms compute_terms(Method method, const Weights& w, model::GptNeo& model, model::GptNeo* reference,
                    const torch::Tensor& forget, const torch::Tensor& neighbour, int64_t pad_id,
                    const Counts& global) {
  Terms out;
  if (forget.size(0) == 0) {
    // No active pair here: a zero loss over every parameter, so each one still gets a (zero) gradient and
    // the engine's per-parameter reduction hooks run in step with the other ranks.
    torch::Tensor zero = torch::zeros({}, torch::kFloat);
    for (const auto& p : model->parameters()) zero = zero + p.sum().to(torch::kFloat) * 0.0;
    out.loss = zero;
    return out;
  }
  const bool ascent = method != Method::kPo;
  const bool mismatched =
      method == Method::kLlmu || method == Method::kPo;  // forget inputs, neighbour labels
  const bool learn_on_neighbour = method == Method::kIcu || method == Method::kPo;
  const bool kl = needs_reference(method);

  torch::Tensor forget_logits = model->forward(forget).logits;  // [b, T, V]
  torch::Tensor loss = torch::zeros({}, torch::kFloat);
  if (ascent) {
    torch::Tensor s = ce_sum(forget_logits, pad_masked_labels(forget, pad_id));
    out.forget_sum = s.item<double>();
    loss = loss - w.uw * s / global.forget_tokens;
  }
  if (mismatched) {
    // LLMU's "random mismatch" and PO's descent: the forget inputs must predict the neighbour text.
    torch::Tensor s = ce_sum(forget_logits, pad_masked_labels(neighbour, pad_id));
    out.mismatch_sum = s.item<double>();
    const double weight = method == Method::kPo ? w.uw : w.lw;
    loss = loss + weight * s / global.forget_as_neighbour_tokens;
  }
  if (learn_on_neighbour || kl) {
    torch::Tensor logits = model->forward(neighbour).logits;
    if (learn_on_neighbour) {
      torch::Tensor s = ce_sum(logits, pad_masked_labels(neighbour, pad_id));
      out.neighbour_sum = s.item<double>();
      loss = loss + w.lw * s / global.neighbour_tokens;
    }
    if (kl) {
      torch::Tensor ref_logits;
      {
        torch::NoGradGuard frozen;
        ref_logits = (*reference)->forward(neighbour).logits;
      }
      torch::Tensor s = kl_sum(logits, ref_logits);
      out.kl_sum = s.item<double>();
      loss = loss + w.kl * s / global.positions;
    }
  }
  out.loss = loss;
  return out;
}

}  // namespace lethe::unlearn
