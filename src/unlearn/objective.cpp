#include "unlearn/objective.h"

#include <ATen/ATen.h>
#include "model/lm_loss.h"

namespace lethe::unlearn {
namespace {

// Summed next-token CE of `labels` given the final hidden states (model/lm_loss.h: the head in chunks, fp32,
// labels shifted by one, −100 ignored). hidden [b, T, C], labels [b, T] → scalar.
torch::Tensor ce_sum(model::CausalLm& model, const torch::Tensor& hidden, const torch::Tensor& labels) {
  return model::next_token_ce_sum(hidden, model->head_weight(), labels);
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

torch::Tensor Terms::sums() const {
  const auto opts = torch::TensorOptions().dtype(torch::kDouble).device(loss.device());
  auto term = [&](const torch::Tensor& t) {
    return t.defined() ? t.detach().to(torch::kDouble).reshape({}) : torch::zeros({}, opts);
  };
  return torch::stack({term(loss), term(forget_sum), term(neighbour_sum), term(mismatch_sum), term(kl_sum)});
}

Terms compute_terms(Method method, const Weights& w, model::CausalLm& model, model::CausalLm* reference,
                    const torch::Tensor& forget, const torch::Tensor& neighbour, int64_t pad_id,
                    const Counts& global, const torch::Tensor& forget_mask,
                    const torch::Tensor& neighbour_mask) {
  Terms out;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(model->head_weight().device());
  if (forget.size(0) == 0) {
    // No active pair here: a zero loss over every parameter, so each one still gets a (zero) gradient and
    // the engine's per-parameter reduction hooks run in step with the other ranks.
    torch::Tensor zero = torch::zeros({}, f32);
    for (const auto& p : model->parameters()) zero = zero + p.sum().to(torch::kFloat) * 0.0;
    out.loss = zero;
    return out;
  }
  const bool ascent = method != Method::kPo;
  const bool mismatched =
      method == Method::kLlmu || method == Method::kPo;  // forget inputs, neighbour labels
  const bool learn_on_neighbour = method == Method::kIcu || method == Method::kPo;
  const bool kl = needs_reference(method);

  torch::Tensor forget_hidden =
      model->forward(forget, {.attention_mask = forget_mask, .compute_logits = false}).last_hidden_state;
  torch::Tensor loss = torch::zeros({}, f32);
  if (ascent) {
    out.forget_sum = ce_sum(model, forget_hidden, pad_masked_labels(forget, pad_id));
    loss = loss - w.uw * out.forget_sum / global.forget_tokens;
  }
  if (mismatched) {
    // LLMU's "random mismatch" and PO's descent: the forget inputs must predict the neighbour text.
    out.mismatch_sum = ce_sum(model, forget_hidden, pad_masked_labels(neighbour, pad_id));
    const double weight = method == Method::kPo ? w.uw : w.lw;
    loss = loss + weight * out.mismatch_sum / global.forget_as_neighbour_tokens;
  }
  if (learn_on_neighbour || kl) {
    // The KL term needs the whole distribution at every position; the CE terms go through the chunked head.
    torch::Tensor hidden =
        model->forward(neighbour, {.attention_mask = neighbour_mask, .compute_logits = false})
            .last_hidden_state;
    if (learn_on_neighbour) {
      out.neighbour_sum = ce_sum(model, hidden, pad_masked_labels(neighbour, pad_id));
      loss = loss + w.lw * out.neighbour_sum / global.neighbour_tokens;
    }
    if (kl) {
      torch::Tensor ref_logits;
      {
        torch::NoGradGuard frozen;
        ref_logits = (*reference)->forward(neighbour, {.attention_mask = neighbour_mask}).logits;
      }
      out.kl_sum = kl_sum(model->lm_head(hidden), ref_logits);
      loss = loss + w.kl * out.kl_sum / global.positions;
    }
  }
  for (torch::Tensor* t : {&out.forget_sum, &out.mismatch_sum, &out.neighbour_sum, &out.kl_sum})
    if (t->defined()) *t = t->detach();
  out.loss = loss;
  return out;
}

}  // namespace lethe::unlearn
