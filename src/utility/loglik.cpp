#include "utility/loglik.h"

#include <algorithm>

#include <ATen/ATen.h>

namespace lethe::utility {

Request make_request(const std::vector<int64_t>& context, const std::vector<int64_t>& continuation,
                     int64_t window) {
  std::vector<int64_t> whole(context);
  whole.insert(whole.end(), continuation.begin(), continuation.end());
  if (static_cast<int64_t>(whole.size()) > window) whole.erase(whole.begin(), whole.end() - window);
  Request r;
  r.target.assign(
      continuation.end() - static_cast<std::ptrdiff_t>(std::min(continuation.size(), whole.size() - 1)),
      continuation.end());
  r.input.assign(whole.begin(), whole.end() - 1);
  return r;
}

std::vector<std::vector<Score>> score(model::GptNeo& model, const std::vector<std::vector<Request>>& groups,
                                      int64_t pad) {
  torch::NoGradGuard no_grad;
  const auto g_count = static_cast<int64_t>(groups.size());
  // Shared prefix per group: the longest common prefix of its inputs, leaving every input at least one
  // token of its own so that each request has a tail row.
  std::vector<int64_t> prefix(g_count), row_group;
  for (int64_t g = 0; g < g_count; ++g) {
    const auto& rs = groups[g];
    size_t p = rs[0].input.size() - 1;
    for (const Request& r : rs) {
      p = std::min(p, r.input.size() - 1);
      size_t k = 0;
      while (k < p && r.input[k] == rs[0].input[k]) ++k;
      p = k;
    }
    prefix[g] = static_cast<int64_t>(p);
    row_group.insert(row_group.end(), rs.size(), g);
  }
  const int64_t p_max = *std::max_element(prefix.begin(), prefix.end());
  const auto rows = static_cast<int64_t>(row_group.size());

  // Prefixes, left padded so that every group's last prefix token sits in column p_max - 1: [G, p_max].
  model::KvCache cache;
  torch::Tensor prefix_mask, prefix_hidden;
  if (p_max > 0) {
    torch::Tensor ids = torch::full({g_count, p_max}, pad, torch::kLong);
    prefix_mask = torch::zeros({g_count, p_max}, torch::kLong);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = prefix_mask.accessor<int64_t, 2>();
    for (int64_t g = 0; g < g_count; ++g)
      for (int64_t k = 0; k < prefix[g]; ++k) {
        ia[g][p_max - prefix[g] + k] = groups[g][0].input[k];
        ma[g][p_max - prefix[g] + k] = 1;
      }
    model::ForwardArgs a;
    a.attention_mask = prefix_mask;
    a.position_ids = model::position_ids_from_mask(prefix_mask);
    a.cache = &cache;
    a.compute_logits = false;
    prefix_hidden = model->forward(ids, a).last_hidden_state;  // [G, p_max, C]
    cache.reorder(torch::tensor(row_group, torch::kLong));     // every request gets its group's cache
  }

  // Tails, right padded: [R, s_max]; positions continue from the group's prefix.
  int64_t s_max = 1;
  {
    int64_t r = 0;
    for (int64_t g = 0; g < g_count; ++g)
      for (const Request& q : groups[g]) {
        s_max = std::max(s_max, static_cast<int64_t>(q.input.size()) - prefix[g]);
        ++r;
      }
  }
  torch::Tensor tail = torch::full({rows, s_max}, pad, torch::kLong),
                tail_mask = torch::zeros({rows, s_max}, torch::kLong),
                tail_pos = torch::zeros({rows, s_max}, torch::kLong);
  {
    auto ta = tail.accessor<int64_t, 2>();
    auto tm = tail_mask.accessor<int64_t, 2>();
    auto tp = tail_pos.accessor<int64_t, 2>();
    int64_t r = 0;
    for (int64_t g = 0; g < g_count; ++g)
      for (const Request& q : groups[g]) {
        for (int64_t k = prefix[g]; k < static_cast<int64_t>(q.input.size()); ++k) {
          ta[r][k - prefix[g]] = q.input[k];
          tm[r][k - prefix[g]] = 1;
          tp[r][k - prefix[g]] = k;
        }
        ++r;
      }
  }
  model::ForwardArgs a;
  a.attention_mask =
      p_max > 0
          ? torch::cat({prefix_mask.index_select(0, torch::tensor(row_group, torch::kLong)), tail_mask}, 1)
          : tail_mask;
  a.position_ids = tail_pos;
  a.cache = p_max > 0 ? &cache : nullptr;
  a.compute_logits = false;
  const torch::Tensor tail_hidden = model->forward(tail, a).last_hidden_state;  // [R, s_max, C]
  const int64_t c = tail_hidden.size(2);

  // The hidden state at every position that predicts a continuation token: [N, C], N = all target tokens.
  std::vector<int64_t> index, target;
  const int64_t tail_offset = p_max > 0 ? g_count * p_max : 0;
  {
    int64_t r = 0;
    for (int64_t g = 0; g < g_count; ++g)
      for (const Request& q : groups[g]) {
        const auto len = static_cast<int64_t>(q.input.size()), n = static_cast<int64_t>(q.target.size());
        for (int64_t k = 0; k < n; ++k) {
          const int64_t pos = len - n + k;
          index.push_back(pos < prefix[g] ? g * p_max + (p_max - prefix[g]) + pos
                                          : tail_offset + r * s_max + (pos - prefix[g]));
          target.push_back(q.target[k]);
        }
        ++r;
      }
  }
  const torch::Tensor flat = p_max > 0
                                 ? torch::cat({prefix_hidden.reshape({-1, c}), tail_hidden.reshape({-1, c})})
                                 : tail_hidden.reshape({-1, c});
  const torch::Tensor picked = flat.index_select(0, torch::tensor(index, torch::kLong));
  const torch::Tensor tgt = torch::tensor(target, torch::kLong);
  // LM head in chunks: [chunk, V] fp32 logits at a time instead of [N, V].
  constexpr int64_t kChunk = 256;
  std::vector<float> lp(index.size());
  std::vector<int64_t> am(index.size());
  for (int64_t b = 0; b < picked.size(0); b += kChunk) {
    const int64_t m = std::min(kChunk, picked.size(0) - b);
    const torch::Tensor logits = model->lm_head(picked.narrow(0, b, m)).to(torch::kFloat);
    const torch::Tensor t = tgt.narrow(0, b, m).unsqueeze(1);
    const torch::Tensor l = at::log_softmax(logits, -1).gather(1, t).squeeze(1).contiguous();
    const torch::Tensor x = logits.argmax(-1).contiguous();
    std::copy_n(l.data_ptr<float>(), m, lp.begin() + b);
    std::copy_n(x.data_ptr<int64_t>(), m, am.begin() + b);
  }

  std::vector<std::vector<Score>> out(g_count);
  size_t k = 0;
  for (int64_t g = 0; g < g_count; ++g)
    for (const Request& q : groups[g]) {
      Score s;
      s.greedy = true;
      for (size_t i = 0; i < q.target.size(); ++i, ++k) {
        s.logprob += lp[k];
        s.argmax.push_back(am[k]);
        s.greedy = s.greedy && am[k] == q.target[i];
      }
      out[g].push_back(std::move(s));
    }
  return out;
}

}  // namespace lethe::utility
