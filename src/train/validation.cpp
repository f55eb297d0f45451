#include "train/validation.h"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/metrics.h"
#include "train/run_common.h"

namespace lethe::train {
namespace {

// Columns gathered per pair, in this order.
enum Column { kEl, kMa, kBleu, kP, kR, kF1, kDistinct, kEntropy, kCe, kTokens, kColumns };

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

void check_forget_rows(const UnlearnSection& u, const prep::Pairs& p, const model::ModelConfig& arch,
                       int64_t tokenizer_vocab) {
  const int64_t t = p.forget_tokens.size(1);
  const std::string& ds = u.dataset;
  LETHE_CHECK_INPUT(t >= 2, "{}: rows of {} tokens", ds, t);
  LETHE_CHECK_INPUT(t <= arch.max_position_embeddings(),
                    "{}: rows of {} tokens exceed the model's {} positions", ds, t,
                    arch.max_position_embeddings());
  LETHE_CHECK_INPUT(
      arch.vocab_size() <= tokenizer_vocab,
      "the tokenizer has {} tokens but the model's vocabulary is {}: generations could not be decoded; "
      "set tokenizer.path to the model's tokenizer",
      tokenizer_vocab, arch.vocab_size());
  for (const torch::Tensor* rows :
       {&p.forget_tokens, &p.neighbour_tokens, &p.forget_input.ids, &p.neighbour_input.ids}) {
    const int64_t lo = rows->min().item<int64_t>(), hi = rows->max().item<int64_t>();
    LETHE_CHECK_INPUT(lo >= 0 && hi < arch.vocab_size(),
                      "{}: token ids span [{}, {}] but the model's vocabulary is {}", ds, lo, hi,
                      arch.vocab_size());
  }
  LETHE_CHECK_INPUT(u.prefix_begin < u.suffix_begin && u.suffix_begin < t,
                    "unlearn.prefix_begin ({}) < unlearn.suffix_begin ({}) < row length ({}) must hold",
                    u.prefix_begin, u.suffix_begin, t);
  LETHE_CHECK_INPUT(u.suffix_begin - u.prefix_begin + u.new_tokens <= arch.max_position_embeddings(),
                    "prompt ({}) + unlearn.new_tokens ({}) exceed the model's {} positions",
                    u.suffix_begin - u.prefix_begin, u.new_tokens, arch.max_position_embeddings());
  LETHE_CHECK_INPUT(u.ma_begin < t, "unlearn.ma_begin = {}: rows have {} tokens", u.ma_begin, t);
  const int64_t first = u.el_variant == ElVariant::kIcu ? u.suffix_begin : 1;
  LETHE_CHECK_INPUT(first <= t - u.el_n, "unlearn.el_n = {}: rows of {} tokens leave no EL start from {}",
                    u.el_n, t, first);
}

eval::ForgetScoreOptions forget_score_options(const Config& cfg, int64_t eos) {
  const UnlearnSection& u = cfg.unlearn;
  eval::ForgetScoreOptions o;
  o.clean_up = cfg.tokenizer.decode_cleanup == DecodeCleanup::kHf4;
  o.prefix_begin = u.prefix_begin;
  o.suffix_begin = u.suffix_begin;
  o.new_tokens = u.new_tokens;
  o.num_beams = u.num_beams;
  o.eos_token_id = eos;
  o.batch = u.val_batch_size;
  o.ma_begin = u.ma_begin;
  o.el.n = u.el_n;
  o.el.first = u.el_variant == ElVariant::kIcu ? u.suffix_begin : 1;
  o.el.eos_token_id = eos;  // the reference's generate stops rows at EOS (pad = EOS)
  return o;
}

eval::ForgetRows forget_rows(const prep::Pairs& p, const eval::ForgetScoreOptions& o,
                             const text::Tokenizer& tokenizer) {
  eval::ForgetRows r = eval::stored_forget_rows(p.forget_tokens, o);
  if (p.rows == RowTokens::kReencoded) {
    r.input = p.forget_input;
    r.prompts = data::reencode_rows(r.prompts, tokenizer, o.clean_up, r.prompts.size(1)).ids;
  }
  return r;
}

Validation validate_sharded(model::CausalLm& model, const eval::ForgetRows& rows,
                            const eval::ForgetScoreOptions& o, const text::Tokenizer& tokenizer,
                            const eval::TextScorer& bert, comm::Communicator& comm) {
  const auto t0 = Clock::now();
  const int64_t n = rows.input.ids.size(0), world = comm.size(), rank = comm.rank();
  // Shards are whole validation batches, so every batch (and BERTScore's batching) is the same at any N.
  const int64_t batches = (n + o.batch - 1) / o.batch;
  std::vector<int64_t> begin(static_cast<size_t>(world) + 1);
  for (int64_t r = 0; r <= world; ++r)
    begin[static_cast<size_t>(r)] = std::min(n, r * batches / world * o.batch);
  const int64_t lo = begin[static_cast<size_t>(rank)], hi = begin[static_cast<size_t>(rank) + 1];

  // Local scores as a [n_r, columns] block and the candidates as [n_r, new_tokens], gathered by rank.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  torch::Tensor local = torch::zeros({hi - lo, kColumns}, torch::kDouble);
  torch::Tensor local_ids = torch::zeros({hi - lo, o.new_tokens}, torch::kDouble);
  if (hi > lo) {
    eval::ForgetScores s = eval::score_forget_rows(model, rows.narrow(lo, hi - lo), o, tokenizer, bert);
    auto a = local.accessor<double, 2>();
    for (int64_t i = 0; i < hi - lo; ++i) {
      const auto u = static_cast<size_t>(i);
      a[i][kEl] = s.el[u];
      a[i][kMa] = s.ma[u];
      a[i][kBleu] = s.bleu[u];
      a[i][kP] = bert ? s.bert_p[u] : nan;
      a[i][kR] = bert ? s.bert_r[u] : nan;
      a[i][kF1] = bert ? s.bert_f1[u] : nan;
      a[i][kDistinct] = s.distinct[u];
      a[i][kEntropy] = s.entropy[u];
      a[i][kCe] = s.ce_sum[u];
      a[i][kTokens] = s.ce_tokens[u];
    }
    local_ids.copy_(s.candidates.to(torch::kDouble));
  }
  std::vector<int64_t> counts, id_counts;
  for (int64_t r = 0; r < world; ++r) {
    const int64_t m = begin[static_cast<size_t>(r) + 1] - begin[static_cast<size_t>(r)];
    counts.push_back(m * kColumns);
    id_counts.push_back(m * o.new_tokens);
  }
  torch::Tensor all = torch::zeros({n * kColumns}, torch::kDouble);
  torch::Tensor all_ids = torch::zeros({n * o.new_tokens}, torch::kDouble);
  comm.all_gather(local.reshape({-1}), all, counts);
  comm.all_gather(local_ids.reshape({-1}), all_ids, id_counts);
  all = all.view({n, kColumns});

  Validation v;
  v.has_bert = static_cast<bool>(bert);
  eval::ForgetScores& s = v.scores;
  s.candidates = all_ids.view({n, o.new_tokens}).to(torch::kLong);
  auto a = all.accessor<double, 2>();
  double ce = 0, tokens = 0;
  for (int64_t i = 0; i < n; ++i) {
    s.el.push_back(a[i][kEl]);
    s.ma.push_back(a[i][kMa]);
    s.bleu.push_back(a[i][kBleu]);
    if (v.has_bert) {
      s.bert_p.push_back(a[i][kP]);
      s.bert_r.push_back(a[i][kR]);
      s.bert_f1.push_back(a[i][kF1]);
    }
    s.distinct.push_back(a[i][kDistinct]);
    s.entropy.push_back(a[i][kEntropy]);
    s.ce_sum.push_back(a[i][kCe]);
    s.ce_tokens.push_back(a[i][kTokens]);
    ce += a[i][kCe];
    tokens += a[i][kTokens];
    s.candidate_text.push_back(eval::decode_text(tokenizer, s.candidates[i], o.clean_up));
    s.reference_text.push_back(eval::decode_text(tokenizer, rows.suffixes[i], o.clean_up));
  }
  v.el = mean(s.el);
  v.ma = mean(s.ma);
  v.bleu = mean(s.bleu);
  v.bert_f1 = v.has_bert ? mean(s.bert_f1) : nan;
  v.val_loss = tokens > 0 ? ce / tokens : 0.0;
  v.distinct = mean(s.distinct);
  v.entropy = mean(s.entropy);
  v.seconds = since(t0);
  return v;
}

void write_validation_table(const std::filesystem::path& metrics_file, int64_t epoch, const Validation& v,
                            const torch::Tensor& doc_ids, const std::vector<uint8_t>& flags) {
  const eval::ForgetScores& s = v.scores;
  std::vector<double> ids, flag, loss;
  for (int64_t i = 0; i < doc_ids.size(0); ++i)
    ids.push_back(static_cast<double>(doc_ids[i].item<int64_t>()));
  for (uint8_t f : flags) flag.push_back(f);
  for (size_t i = 0; i < s.ce_sum.size(); ++i)
    loss.push_back(s.ce_tokens[i] > 0 ? s.ce_sum[i] / s.ce_tokens[i] : 0.0);
  std::vector<std::pair<std::string, std::vector<double>>> cols = {
      {"doc_id", ids},          {"el", s.el},           {"ma", s.ma},  {"bleu", s.bleu}, {"flag", flag},
      {"distinct", s.distinct}, {"entropy", s.entropy}, {"loss", loss}};
  if (v.has_bert) {
    cols.emplace_back("bert_p", s.bert_p);
    cols.emplace_back("bert_r", s.bert_r);
    cols.emplace_back("bert_f1", s.bert_f1);
  }
  io::write_table(metrics_file, fmt::format("samples/epoch-{:04d}", epoch), cols,
                  {{"candidates", nlohmann::json(s.candidate_text).dump()},
                   {"references", nlohmann::json(s.reference_text).dump()}});
}

}  // namespace lethe::train
