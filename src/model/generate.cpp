#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace lethe::model {
namespace {

// Decoding state shared by greedy and beam search: the running mask, positions and cache of every row.
// An unpadded batch (the common case: one prompt, or prompts of equal length) carries no mask at all, so
// prefill takes the mask-free causal attention path and every step is one token against its cache.
struct Decoder {
  CausalLm& model;
  torch::Tensor mask;      // [R, K] grows by one column per step; undefined when nothing is padded
  torch::Tensor last_pos;  // [R, 1] position id of each row's last token (padded batches only)
  KvCache cache;

  // Prefill: the whole prompt, ids [R, T]. With copies > 1 every row then stands for `copies` identical rows
  // (beams): the prompt is run once and its cache, mask and logits repeated, instead of running every beam's
  // identical prompt. Returns fp32 logits of the last position, [R·copies, V].
  torch::Tensor prefill(const torch::Tensor& ids, int64_t copies = 1) {
    ForwardArgs args{.cache = &cache, .compute_logits = false};
    if (mask.defined()) {
      args.attention_mask = mask;
      args.position_ids = position_ids_from_mask(mask);
      last_pos = args.position_ids.slice(1, -1);
    }
    // Only the last position's logits are needed (HF's logits_to_keep=1): the head runs on one row per
    // prompt.
    torch::Tensor last = model->forward(ids, args).last_hidden_state.select(1, -1);  // [R, C]
    torch::Tensor logits = model->lm_head(last).to(torch::kFloat);                   // [R, V]
    if (copies > 1) {
      cache.reorder(torch::arange(ids.size(0), ids.options().dtype(torch::kLong)).repeat_interleave(copies));
      if (mask.defined()) {
        mask = mask.repeat_interleave(copies, 0);
        last_pos = last_pos.repeat_interleave(copies, 0);
      }
      logits = logits.repeat_interleave(copies, 0);
    }
    return logits;
  }
  // One new token per row: ids [R, 1]. Returns fp32 logits [R, V].
  torch::Tensor step(const torch::Tensor& ids) {
    ForwardArgs args{.cache = &cache};
    if (mask.defined()) {
      mask = torch::cat({mask, torch::ones({mask.size(0), 1}, mask.options())}, 1);
      last_pos = last_pos + 1;
      args.attention_mask = mask;
      args.position_ids = last_pos;
    }
    return model->forward(ids, args).logits.select(1, -1).to(torch::kFloat);
  }
  void reorder(const torch::Tensor& rows) {
    cache.reorder(rows);
    if (!mask.defined()) return;
    mask = mask.index_select(0, rows);
    last_pos = last_pos.index_select(0, rows);
  }
};

// Greedy decoding asks the device whether every row has finished only every kCheckEvery tokens (a host
// read per token would stall a GPU after each step); the tokens decoded past the point where all rows
// finished are padding and are cut off again, so the result equals HF's stop-at-once loop.
constexpr int64_t kCheckEvery = 8;

// Index of the first decoded token after which every row had finished (any_open[i] == 0), or -1. One host
// read of the flags gathered so far.
int64_t first_all_finished(const std::vector<torch::Tensor>& any_open) {
  if (any_open.empty()) return -1;
  const torch::Tensor open = torch::stack(any_open).cpu();
  const int64_t* v = open.data_ptr<int64_t>();
  for (int64_t i = 0; i < open.numel(); ++i)
    if (v[i] == 0) return i;
  return -1;
}

// o.eos_token_ids on the device, [E] int64; undefined when there are none.
torch::Tensor eos_tensor(const GenerateOptions& o, const torch::Tensor& like) {
  if (o.eos_token_ids.empty()) return {};
  return torch::tensor(o.eos_token_ids, torch::kLong).to(like.device());
}

GenerateResult greedy(Decoder& dec, torch::Tensor ids, const GenerateOptions& o) {
  const torch::Tensor eos = eos_tensor(o, ids);
  const int64_t pad = o.pad_token_id >= 0 ? o.pad_token_id : eos.defined() ? o.eos_token_ids.front() : 0;
  const int64_t t0 = ids.size(1), max_length = t0 + o.max_new_tokens;
  torch::Tensor unfinished = torch::ones({ids.size(0)}, ids.options());
  std::vector<torch::Tensor> any_open;  // per decoded token: 1 while some row is unfinished after it
  auto cut = [&](int64_t i) { return GenerateResult{ids.slice(1, 0, t0 + i + 1).contiguous(), {}}; };
  torch::Tensor logits = dec.prefill(ids);
  while (ids.size(1) < max_length) {
    torch::Tensor next = logits.argmax(-1);  // [R]; first index on ties, as torch.argmax
    // Rows that already produced EOS keep emitting padding (HF _sample).
    if (eos.defined()) next = next * unfinished + pad * (1 - unfinished);
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    if (ids.size(1) >= max_length) break;
    if (eos.defined()) {
      unfinished = unfinished * torch::isin(next, eos).logical_not().to(torch::kLong);
      any_open.push_back(unfinished.max());
      if (static_cast<int64_t>(any_open.size()) % kCheckEvery == 0)
        if (const int64_t i = first_all_finished(any_open); i >= 0) return cut(i);  // HF stops right there
    }
    logits = dec.step(next.unsqueeze(1));
  }
  if (const int64_t i = first_all_finished(any_open); i >= 0) return cut(i);
  return {ids, {}};
}

// out[b, k, ...] = t[b, idx[b, k], ...]
torch::Tensor gather_beams(const torch::Tensor& t, const torch::Tensor& idx) {
  torch::Tensor i = idx;
  std::vector<int64_t> shape = {idx.size(0), idx.size(1)};
  for (int64_t d = 2; d < t.dim(); ++d) {
    i = i.unsqueeze(-1);
    shape.push_back(t.size(d));
  }
  return t.gather(1, i.expand(shape));
}

// A port of transformers' vectorised beam search (GenerationMixin._beam_search, 5.x): for each batch item it
// keeps `num_beams` running beams and `num_beams` finished hypotheses; every step takes the top 2·num_beams
// continuations of all running beams so that enough unfinished ones remain after some hit EOS.
GenerateResult beam_search(Decoder& dec, const torch::Tensor& prompt, const GenerateOptions& o) {
  const int64_t nb = o.num_beams, b = prompt.size(0), t0 = prompt.size(1);
  const int64_t max_length = t0 + o.max_new_tokens;
  const torch::Tensor eos = eos_tensor(o, prompt);
  const bool has_eos = eos.defined();
  // HF keeps max(2, 1 + number of EOS ids) · num_beams candidates, so that enough continuations that did
  // not end remain.
  const int64_t keep = std::max<int64_t>(2, 1 + static_cast<int64_t>(o.eos_token_ids.size())) * nb;
  // HF's `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1`: a pad id of 0 counts as
  // unset.
  const int64_t fill = has_eos ? (o.pad_token_id > 0 ? o.pad_token_id : o.eos_token_ids.front()) : -1;
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(prompt.device());
  auto i64 = torch::TensorOptions().dtype(torch::kLong).device(prompt.device());
  auto flag = torch::TensorOptions().dtype(torch::kBool).device(prompt.device());

  torch::Tensor running_seq = torch::full({b, nb, max_length}, fill, i64);  // [B, nb, L]
  running_seq.slice(2, 0, t0).copy_(prompt.unsqueeze(1));  // every beam starts as a copy of its prompt
  torch::Tensor sequences = running_seq.clone();
  torch::Tensor running_scores = torch::zeros({b, nb}, f32);
  running_scores.slice(1, 1).fill_(-1e9);  // all beams start identical: only the first may expand at step one
  torch::Tensor beam_scores = torch::full({b, nb}, -1e9, f32);
  torch::Tensor finished = torch::zeros({b, nb}, flag);
  torch::Tensor heuristic_unsatisfied = torch::ones({b, 1}, flag);
  torch::Tensor running_beam_idx = torch::full({b, nb, max_length - t0}, -1, i64);
  torch::Tensor beam_idx = running_beam_idx.clone();
  torch::Tensor top_nb_mask = torch::cat({torch::ones({nb}, flag), torch::zeros({keep - nb}, flag)});
  torch::Tensor batch_offset = torch::arange(b, i64).view({b, 1}) * nb;

  torch::Tensor logits = dec.prefill(prompt, nb);  // [B·nb, V]
  const int64_t v = logits.size(-1);
  for (int64_t cur = t0;; ++cur) {
    if (cur > t0) logits = dec.step(running_seq.select(2, cur - 1).reshape({b * nb, 1}));
    torch::Tensor lp = torch::log_softmax(logits, -1).view({b, nb, v}) + running_scores.unsqueeze(-1);
    auto [topk_lp, topk_idx] = lp.view({b, nb * v}).topk(keep);  // [B, keep]
    torch::Tensor src_beam = topk_idx.div(v, "floor");
    torch::Tensor topk_seq = gather_beams(running_seq, src_beam);  // [B, keep, L]
    torch::Tensor topk_beam_idx = gather_beams(running_beam_idx, src_beam);
    torch::Tensor topk_ids = topk_idx.remainder(v);
    topk_seq.select(2, cur).copy_(topk_ids);
    topk_beam_idx.select(2, cur - t0).copy_(src_beam + batch_offset);

    // Stopping criteria on the extended sequences: max length for all, EOS for those that just emitted it.
    torch::Tensor hits = torch::full({b, keep}, cur + 1 >= max_length, flag);
    if (has_eos) hits = hits | torch::isin(topk_ids, eos);

    // Next running beams: the best `nb` continuations that did not stop.
    torch::Tensor running_lp = topk_lp + hits.to(torch::kFloat) * -1e9;
    torch::Tensor next = std::get<1>(running_lp.topk(nb));
    running_seq = gather_beams(topk_seq, next);
    running_scores = gather_beams(running_lp, next);
    running_beam_idx = gather_beams(topk_beam_idx, next);

    // Finished hypotheses: merge those that just stopped (only from the top nb) with the kept ones.
    torch::Tensor just_finished = hits & top_nb_mask.unsqueeze(0);
    torch::Tensor cand = topk_lp / std::pow(static_cast<double>(cur + 1 - t0), o.length_penalty);
    torch::Tensor full = finished.all(-1, true) & (o.early_stopping == EarlyStopping::kTrue);
    cand = cand + full.to(torch::kFloat) * -1e9 + (~heuristic_unsatisfied).to(torch::kFloat) * -1e9 +
           (~just_finished).to(torch::kFloat) * -1e9;
    torch::Tensor merged_scores = torch::cat({beam_scores, cand}, 1);
    torch::Tensor best = std::get<1>(merged_scores.topk(nb));
    sequences = gather_beams(torch::cat({sequences, topk_seq}, 1), best);
    beam_scores = gather_beams(merged_scores, best);
    beam_idx = gather_beams(torch::cat({beam_idx, topk_beam_idx}, 1), best);
    finished = gather_beams(torch::cat({finished, just_finished}, 1), best);

    dec.reorder(running_beam_idx.select(2, cur - t0).reshape({b * nb}));

    // Can a running beam still beat the worst finished one? (HF's heuristic, including its "never" variant.)
    const int64_t cur_len = cur + 1;
    const double best_len = (o.early_stopping == EarlyStopping::kNever && o.length_penalty > 0.0)
                                ? static_cast<double>(max_length - t0)
                                : static_cast<double>(cur_len - t0);
    torch::Tensor best_running = running_scores.slice(1, 0, 1) / std::pow(best_len, o.length_penalty);
    torch::Tensor worst_finished =
        torch::where(finished, std::get<0>(beam_scores.min(1, true)), torch::full({}, -1e9, f32));
    heuristic_unsatisfied = heuristic_unsatisfied & (best_running > worst_finished).any(-1, true);

    // One host read per step for the three stopping conditions (beam search's stop is data-dependent).
    torch::Tensor flags = torch::stack({heuristic_unsatisfied.any(), finished.all(), hits.all()}).cpu();
    const bool* f = flags.data_ptr<bool>();
    const bool improvement_possible = f[0];
    const bool open_beam = !(f[1] && o.early_stopping == EarlyStopping::kTrue);
    const bool can_continue = !f[2];
    if (!(improvement_possible && open_beam && can_continue)) break;
  }
  // Best hypothesis per item, trimmed to the longest generated length among the returned ones.
  torch::Tensor best_seq = sequences.select(1, 0);                 // [B, L]
  torch::Tensor generated = (beam_idx.select(1, 0) != -1).sum(1);  // [B]
  const int64_t out_len = t0 + generated.max().item<int64_t>();
  return {best_seq.slice(1, 0, out_len).contiguous(), beam_scores.select(1, 0).contiguous()};
}

}  // namespace

GenerateResult generate(CausalLm& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const GenerateOptions& options) {
  TORCH_CHECK(options.num_beams >= 1, "num_beams must be >= 1");
  // Eval mode for the duration, the caller's mode back afterwards, even when something throws.
  struct ModeGuard {
    CausalLm& m;
    bool was_training;
    ~ModeGuard() { m->train(was_training); }
  } mode{model, model->is_training()};
  model->eval();
  GenerateResult result;
  {
    // Inference mode, not just no-grad: it also skips version counters and view tracking on every small op of
    // every decoding step.
    c10::InferenceMode inference;
    torch::Tensor ids = input_ids.to(torch::kLong);
    // Padding is looked for once per call (a host read), never per step.
    torch::Tensor mask;
    if (attention_mask.defined() && (attention_mask == 0).any().item<bool>())
      mask = attention_mask.to(ids.device(), torch::kLong);
    Decoder dec{model, mask, {}, {}};
    // On a GPU the cache is preallocated for prompt + new tokens and written in place (KvCache::capacity).
    if (ids.is_cuda()) dec.cache.capacity = ids.size(1) + options.max_new_tokens;
    if (options.max_new_tokens == 0)
      result.sequences = ids;
    else if (options.num_beams == 1)
      result = greedy(dec, ids, options);
    else
      result = beam_search(dec, ids, options);
  }
  // Inference tensors cannot take part in autograd later (e.g. as training inputs): hand back normal ones.
  result.sequences = result.sequences.clone();
  if (result.scores.defined()) result.scores = result.scores.clone();
  return result;
}

}  // namespace lethe::model
