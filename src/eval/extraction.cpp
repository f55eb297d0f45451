#include "eval/extraction.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/error.h"
#include "model/generate.h"

namespace lethe::eval {

std::vector<double> memorization_accuracy(model::CausalLm& model, const torch::Tensor& rows, int64_t batch,
                                          int64_t first) {
  c10::InferenceMode guard;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t b = rows.size(0), t = rows.size(1);
  LETHE_CHECK_INPUT(first >= 1 && first < t, "MA from position {}: rows have {} tokens", first, t);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(b));
  const torch::Tensor on_device = rows.to(model->head_weight().device());
  std::vector<torch::Tensor> accs;  // per batch [b'], read back once at the end
  for (int64_t s = 0; s < b; s += batch) {
    torch::Tensor x = on_device.narrow(0, s, std::min(batch, b - s));
    // Greedy prediction at positions first-1..T-2, [b', T-first], compared with the next token.
    torch::Tensor pred = model->forward(x).logits.narrow(1, first - 1, t - first).argmax(-1);
    accs.push_back((pred == x.narrow(1, first, t - first)).to(torch::kDouble).mean(1));
  }
  if (!accs.empty()) {
    const torch::Tensor acc = torch::cat(accs).cpu();
    out.assign(acc.data_ptr<double>(), acc.data_ptr<double>() + acc.numel());
  }
  model->train(was_training);
  return out;
}

double ngram_overlap(const int64_t* pred, const int64_t* label, int64_t length, int64_t n) {
  const int64_t grams = length - n + 1;
  std::set<std::vector<int64_t>> truth;
  for (int64_t i = 0; i < grams; ++i) truth.emplace(label + i, label + i + n);
  int64_t hits = 0;
  for (int64_t i = 0; i < grams; ++i) hits += truth.count(std::vector<int64_t>(pred + i, pred + i + n));
  return static_cast<double>(hits) / static_cast<double>(grams);
}

std::vector<double> extraction_likelihood(model::CausalLm& model, const torch::Tensor& rows,
                                          const ElOptions& o) {
  const int64_t b = rows.size(0), t = rows.size(1);
  LETHE_CHECK_INPUT(o.n >= 1 && o.first >= 1 && o.first <= t - o.n,
                    "EL_{} from position {}: rows of {} tokens leave no start with {} label tokens", o.n,
                    o.first, t, o.n);
  c10::InferenceMode guard;
  const bool was_training = model->is_training();
  model->eval();
  // Every (row, start i) pair is one greedy continuation of x_<i. The reference runs `generate` from scratch
  // for each start, re-reading the prompt every time (~5x the tokens it decodes). Here one teacher-forced
  // pass per row fills a KV cache whose first i positions *are* the prompt's cache for every start, and its
  // logit at i-1 gives the first new token. Continuations of several starts are decoded together: each
  // job's cache prefix is right-aligned in a [m, H, L, D] block and the padding masked out.
  const int64_t starts = t - o.n - o.first + 1, num_layers = model->config().num_layers();
  // Rows are taken `chunk` at a time and their jobs ordered by start, so a decode batch holds (mostly) one
  // start and runs exactly the T - i - 1 steps it needs.
  const int64_t rows_per_block = std::max<int64_t>(1, o.chunk);
  const int64_t max_pos = model->config().max_position_embeddings();
  torch::Tensor cpu_rows = rows.to(torch::kCPU).contiguous();
  const int64_t* data = cpu_rows.data_ptr<int64_t>();
  const torch::Tensor dev_rows = rows.to(model->head_weight().device());
  const auto opts = dev_rows.options().dtype(torch::kLong);
  std::vector<double> sum(static_cast<size_t>(b), 0.0);
  for (int64_t r0 = 0; r0 < b; r0 += rows_per_block) {
    const int64_t rb = std::min(rows_per_block, b - r0);
    model::KvCache full;
    model::ForwardArgs fa;
    fa.cache = &full;
    fa.compute_logits = false;
    torch::Tensor hidden = model->forward(dev_rows.narrow(0, r0, rb), fa).last_hidden_state;  // [rb, T, C]
    // The first continuation token of every start: argmax at i-1, [rb, starts].
    torch::Tensor first_tok = model->lm_head(hidden.narrow(1, o.first - 1, starts)).argmax(-1);
    std::vector<std::pair<int64_t, int64_t>> jobs;  // (row in block, start)
    for (int64_t i = o.first; i <= t - o.n; ++i)
      for (int64_t r = 0; r < rb; ++r) jobs.emplace_back(r, i);
    for (size_t s = 0, e = 0; s < jobs.size(); s = e) {
      // Jobs are ordered by start: grow the chunk while the padded cache plus the decode steps stay inside
      // the model's positions (the cache is `longest` wide and grows by T - shortest - 1).
      const int64_t shortest = jobs[s].second;
      int64_t longest = shortest;
      for (e = s; e < jobs.size() && e - s < static_cast<size_t>(o.chunk); ++e) {
        if (e > s && jobs[e].second + t - shortest - 1 > max_pos) break;
        longest = jobs[e].second;
      }
      const auto m = static_cast<int64_t>(e - s);
      model::KvCache c;
      torch::Tensor mask = torch::zeros({m, longest}, opts), pos = torch::empty({m, 1}, opts),
                    next = torch::empty({m}, opts);
      for (int64_t l = 0; l < num_layers; ++l) {
        const auto ul = static_cast<size_t>(l);
        std::vector<int64_t> shape = full.keys[ul].sizes().vec();
        shape[0] = m;
        shape[2] = longest;
        c.keys.push_back(torch::zeros(shape, full.keys[ul].options()));
        c.values.push_back(torch::zeros(shape, full.values[ul].options()));
      }
      for (int64_t j = 0; j < m; ++j) {
        const auto [r, i] = jobs[s + static_cast<size_t>(j)];
        for (size_t l = 0; l < static_cast<size_t>(num_layers); ++l) {
          c.keys[l][j].narrow(1, longest - i, i).copy_(full.keys[l][r].narrow(1, 0, i));
          c.values[l][j].narrow(1, longest - i, i).copy_(full.values[l][r].narrow(1, 0, i));
        }
        mask[j].narrow(0, longest - i, i).fill_(1);
        pos[j][0] = i;
        next[j] = first_tok[r][i - o.first];
      }
      c.length = longest;
      // pred[:, 0] is the teacher-forced argmax; T - shortest - 1 decode steps produce the rest.
      const int64_t len = t - shortest;
      torch::Tensor pred = torch::empty({m, len}, opts);
      pred.select(1, 0).copy_(next);
      // Rows that produced EOS keep emitting it: HF's generate pads finished rows with pad = EOS.
      torch::Tensor done =
          o.eos_token_id >= 0 ? next == o.eos_token_id : torch::zeros({m}, opts.dtype(torch::kBool));
      for (int64_t step = 1; step < len; ++step) {
        mask = torch::cat({mask, torch::ones({m, 1}, opts)}, 1);
        model::ForwardArgs args;
        args.attention_mask = mask;
        args.position_ids = pos;
        args.cache = &c;
        next = model->forward(next.unsqueeze(1), args).logits.select(1, -1).argmax(-1);
        if (o.eos_token_id >= 0) {
          next = next.masked_fill(done, o.eos_token_id);
          done = done | (next == o.eos_token_id);
        }
        pred.select(1, step).copy_(next);
        pos = pos + 1;
      }
      torch::Tensor cpu_pred = pred.to(torch::kCPU).contiguous();
      const int64_t* pp = cpu_pred.data_ptr<int64_t>();
      for (int64_t j = 0; j < m; ++j) {
        const auto [r, i] = jobs[s + static_cast<size_t>(j)];
        sum[static_cast<size_t>(r0 + r)] += ngram_overlap(pp + j * len, data + (r0 + r) * t + i, t - i, o.n);
      }
    }
  }
  model->train(was_training);
  for (double& v : sum) v /= static_cast<double>(starts);
  return sum;
}

double distinct_ratio(const std::vector<int64_t>& ids) {
  if (ids.empty()) return 0;
  return static_cast<double>(std::set<int64_t>(ids.begin(), ids.end()).size()) /
         static_cast<double>(ids.size());
}

double unigram_entropy(const std::vector<int64_t>& ids) {
  std::map<int64_t, int64_t> counts;
  for (int64_t id : ids) ++counts[id];
  double h = 0;
  const auto total = static_cast<double>(ids.size());
  for (const auto& [id, c] : counts) {
    const double p = static_cast<double>(c) / total;
    h -= p * std::log2(p);
  }
  return h;
}

}  // namespace lethe::eval
