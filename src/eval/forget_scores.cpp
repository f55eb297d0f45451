#include "eval/forget_scores.h"

#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/functional/loss.h>

#include "eval/bleu.h"
#include "model/generate.h"
#include "text/cleanup.h"
#include "text/word_tokenize.h"

namespace lethe::eval {
namespace {

torch::TensorOptions on_device_options(model::CausalLm& model) {
  return torch::TensorOptions().dtype(torch::kLong).device(model->head_weight().device());
}

}  // namespace

std::string decode_text(const text::Tokenizer& tokenizer, const torch::Tensor& ids, bool clean_up) {
  torch::Tensor c = ids.to(torch::kCPU, torch::kInt).contiguous();
  std::string t =
      tokenizer.decode(std::span<const int32_t>(c.data_ptr<int32_t>(), static_cast<size_t>(c.numel())));
  return clean_up ? text::clean_up_tokenization(t) : t;
}

double text_bleu(const std::string& candidate, const std::string& reference) {
  return sentence_bleu({text::word_tokenize(text::lower(reference))},
                       text::word_tokenize(text::lower(candidate)));
}

ForgetRows ForgetRows::narrow(int64_t begin, int64_t count) const {
  auto cut = [&](const torch::Tensor& x) { return x.defined() ? x.narrow(0, begin, count) : x; };
  return {.input = {.ids = cut(input.ids), .mask = cut(input.mask)},
          .prompts = cut(prompts),
          .suffixes = cut(suffixes)};
}

ForgetRows stored_forget_rows(const torch::Tensor& rows, const ForgetScoreOptions& o) {
  return {.input = data::stored_rows(rows),
          .prompts = rows.narrow(1, o.prefix_begin, o.suffix_begin - o.prefix_begin),
          .suffixes = rows.narrow(1, o.suffix_begin, rows.size(1) - o.suffix_begin)};
}

ForgetScores score_forget_rows(model::CausalLm& model, const ForgetRows& rows, const ForgetScoreOptions& o,
                               const text::Tokenizer& tokenizer, const TextScorer& bert) {
  ForgetScores s;
  const torch::Tensor& ids = rows.input.ids;
  const int64_t n = ids.size(0), t = ids.size(1);
  s.ma = memorization_accuracy(model, ids, o.batch, o.ma_begin);
  s.el = extraction_likelihood(model, ids, o.el);

  c10::InferenceMode guard;
  const bool was_training = model->is_training();
  model->eval();
  model::GenerateOptions g;
  g.max_new_tokens = o.new_tokens;
  g.num_beams = o.num_beams;
  g.eos_token_ids = {o.eos_token_id};
  g.pad_token_id = o.eos_token_id;
  const int64_t plen = rows.prompts.size(1);
  s.candidates = torch::full({n, o.new_tokens}, o.eos_token_id, on_device_options(model));
  const torch::Device dev = model->head_weight().device();
  const torch::Tensor on_device = ids.to(dev), prompts = rows.prompts.to(dev);
  const torch::Tensor mask = rows.input.mask.defined() ? rows.input.mask.to(dev) : torch::Tensor();
  std::vector<torch::Tensor> ce_parts, token_parts;  // per batch, read back once
  for (int64_t b = 0; b < n; b += o.batch) {
    const int64_t m = std::min(o.batch, n - b);
    torch::Tensor x = on_device.narrow(0, b, m);
    // The prompt alone, with no attention mask (ICU passes none: pad = EOS is attended).
    torch::Tensor seq = model::generate(model, prompts.narrow(0, b, m), {}, g).sequences;
    const int64_t got = std::min(o.new_tokens, seq.size(1) - plen);
    s.candidates.narrow(0, b, m).narrow(1, 0, got).copy_(seq.narrow(1, plen, got));
    // The row's LM loss with its attention mask, pad (= EOS) labels masked: ICU's val_loss.
    const torch::Tensor xm = mask.defined() ? mask.narrow(0, b, m) : mask;
    torch::Tensor logits =
        model->forward(x, {.attention_mask = xm}).logits.narrow(1, 0, t - 1).to(torch::kFloat);
    torch::Tensor labels = x.narrow(1, 1, t - 1).masked_fill(x.narrow(1, 1, t - 1) == o.eos_token_id, -100);
    torch::Tensor ce =
        torch::nn::functional::cross_entropy(
            logits.transpose(1, 2), labels,
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone).ignore_index(-100))
            .sum(1);
    ce_parts.push_back(ce.to(torch::kDouble));
    token_parts.push_back((labels != -100).sum(1).to(torch::kDouble));
  }
  model->train(was_training);
  s.candidates = s.candidates.cpu();
  if (!ce_parts.empty()) {
    const torch::Tensor ce = torch::cat(ce_parts).cpu(), tokens = torch::cat(token_parts).cpu();
    s.ce_sum.assign(ce.data_ptr<double>(), ce.data_ptr<double>() + n);
    s.ce_tokens.assign(tokens.data_ptr<double>(), tokens.data_ptr<double>() + n);
  }

  for (int64_t r = 0; r < n; ++r) {
    torch::Tensor cand = s.candidates[r];
    s.candidate_text.push_back(decode_text(tokenizer, cand, o.clean_up));
    s.reference_text.push_back(decode_text(tokenizer, rows.suffixes[r], o.clean_up));
    s.bleu.push_back(text_bleu(s.candidate_text.back(), s.reference_text.back()));
    const std::vector<int64_t> ids(cand.data_ptr<int64_t>(), cand.data_ptr<int64_t>() + cand.numel());
    s.distinct.push_back(distinct_ratio(ids));
    s.entropy.push_back(unigram_entropy(ids));
  }
  if (bert) {
    // One bert_score call per validation batch, as the reference's val_score does (its padding quirk depends
    // on which pairs share a batch).
    for (int64_t b = 0; b < n; b += o.batch) {
      const auto lo = s.candidate_text.begin() + b, hi = lo + std::min(o.batch, n - b);
      const auto rlo = s.reference_text.begin() + b, rhi = rlo + std::min(o.batch, n - b);
      for (const auto& prf : bert({lo, hi}, {rlo, rhi})) {
        s.bert_p.push_back(prf[0]);
        s.bert_r.push_back(prf[1]);
        s.bert_f1.push_back(prf[2]);
      }
    }
  }
  return s;
}

}  // namespace lethe::eval
