#include "utility/loglik.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "model/loss_chunk.h"

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

namespace {

// Rows per forward are chosen so that rows x (padded length) stays near this many query tokens: the layers'
// cost is per query token, so padding in the query dimension is what batching must avoid.
constexpr int64_t kTokenBudget = 4096;

// Consecutive runs of `order` (sorted longest first) whose rows x first length stays within the budget and
// whose rows are at least 80 % as long as the first.
std::vector<std::vector<int64_t>> chunks(const std::vector<int64_t>& order, const std::vector<int64_t>& len) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t i : order) {
    const int64_t first = out.empty() ? 0 : std::max<int64_t>(1, len[out.back()[0]]);
    if (out.empty() || static_cast<int64_t>(out.back().size() + 1) * first > kTokenBudget ||
        5 * len[i] < 4 * first)  // a new chunk once rows are 20 % shorter than its first: little padding
      out.emplace_back();
    out.back().push_back(i);
  }
  return out;
}

std::vector<int64_t> longest_first(const std::vector<int64_t>& len) {
  std::vector<int64_t> order(len.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return len[a] > len[b]; });
  return order;
}

std::vector<std::vector<Score>> score_part(model::CausalLm& model,
                                           const std::vector<std::vector<Request>>& groups, int64_t pad) {
  const auto g_count = static_cast<int64_t>(groups.size());
  const int64_t layers = model->config().num_layers(), c = model->config().hidden_size();
  // Token rows are laid out on the host (the loops below index them) and copied once per forward; every
  // activation, cache and index stays on the model's device, and the scores come back in one copy.
  const torch::Device dev = model->head_weight().device();
  const auto on_dev = [&](const torch::Tensor& t) { return t.to(dev, /*non_blocking=*/false); };
  const auto index = [&](const std::vector<int64_t>& v) { return on_dev(torch::tensor(v, torch::kLong)); };
  // Shared prefix per group: the longest common prefix of its inputs, leaving every input at least one
  // token of its own so that each request has a tail.
  std::vector<int64_t> prefix(g_count);
  std::vector<const Request*> rows;
  std::vector<int64_t> row_group, tail_len;
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
    for (const Request& r : rs) {
      rows.push_back(&r);
      row_group.push_back(g);
      tail_len.push_back(static_cast<int64_t>(r.input.size()) - prefix[g]);
    }
  }
  const int64_t p_max = *std::max_element(prefix.begin(), prefix.end());

  // 1. Prefixes, in chunks of similar length. Their keys/values and hidden states are gathered right-aligned
  //    into [G, H, p_max, D] / [G, p_max, C] (zeros to the left, masked), so any set of rows can later take
  //    the last p columns of its groups as its cache.
  std::vector<torch::Tensor> keys(layers), values(layers);
  torch::Tensor prefix_hidden,
      prefix_mask = torch::zeros({g_count, p_max}, torch::dtype(torch::kLong).device(dev));
  if (p_max > 0) {
    prefix_hidden = torch::zeros({g_count, p_max, c}, torch::dtype(torch::kFloat).device(dev));
    for (const auto& chunk : chunks(longest_first(prefix), prefix)) {
      const int64_t len = prefix[chunk[0]], b = static_cast<int64_t>(chunk.size());
      if (len == 0) break;  // the rest have no shared prefix
      torch::Tensor ids = torch::full({b, len}, pad, torch::kLong),
                    mask = torch::zeros({b, len}, torch::kLong);
      auto ia = ids.accessor<int64_t, 2>();
      auto ma = mask.accessor<int64_t, 2>();
      for (int64_t i = 0; i < b; ++i) {
        const int64_t g = chunk[i], off = len - prefix[g];
        for (int64_t k = 0; k < prefix[g]; ++k) {
          ia[i][off + k] = groups[g][0].input[k];
          ma[i][off + k] = 1;
        }
      }
      ids = on_dev(ids);
      mask = on_dev(mask);
      model::KvCache cache;
      model::ForwardArgs a;
      a.attention_mask = mask;
      a.position_ids = model::position_ids_from_mask(mask);
      a.cache = &cache;
      a.compute_logits = false;
      const torch::Tensor h = model->forward(ids, a).last_hidden_state;  // [b, len, C]
      for (int64_t l = 0; l < layers; ++l)
        if (!keys[l].defined()) {
          keys[l] = torch::zeros({g_count, cache.keys[l].size(1), p_max, cache.keys[l].size(3)},
                                 cache.keys[l].options());
          values[l] = torch::zeros_like(keys[l]);
        }
      const torch::Tensor where = index(chunk);
      for (int64_t l = 0; l < layers; ++l) {
        keys[l].narrow(2, p_max - len, len).index_copy_(0, where, cache.keys[l]);
        values[l].narrow(2, p_max - len, len).index_copy_(0, where, cache.values[l]);
      }
      prefix_hidden.narrow(1, p_max - len, len).index_copy_(0, where, h.to(torch::kFloat));
      prefix_mask.narrow(1, p_max - len, len).index_copy_(0, where, mask);
    }
  }

  // 2. Tails, in chunks of similar length, each on the last p columns of its rows' prefix caches. The hidden
  //    state at every position that predicts a continuation token goes to `picked` [N, C], its target to
  //    `tgt`.
  std::vector<torch::Tensor> picked_parts;
  std::vector<int64_t> target;
  std::vector<int64_t> row_first(rows.size());    // first entry of each row in picked/target
  std::vector<std::vector<int64_t>> from_prefix;  // per part: flat prefix_hidden indices (or empty)
  for (const auto& chunk : chunks(longest_first(tail_len), tail_len)) {
    const int64_t s = tail_len[chunk[0]], b = static_cast<int64_t>(chunk.size());
    int64_t p = 0;
    for (int64_t r : chunk) p = std::max(p, prefix[row_group[r]]);
    torch::Tensor ids = torch::full({b, s}, pad, torch::kLong), mask = torch::zeros({b, s}, torch::kLong),
                  pos = torch::zeros({b, s}, torch::kLong);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    auto pa = pos.accessor<int64_t, 2>();
    std::vector<int64_t> groups_of(static_cast<size_t>(b));
    for (int64_t i = 0; i < b; ++i) {
      const Request& q = *rows[chunk[i]];
      const int64_t g = row_group[chunk[i]];
      groups_of[i] = g;
      for (int64_t k = prefix[g]; k < static_cast<int64_t>(q.input.size()); ++k) {
        ia[i][k - prefix[g]] = q.input[k];
        ma[i][k - prefix[g]] = 1;
        pa[i][k - prefix[g]] = k;
      }
    }
    ids = on_dev(ids);
    mask = on_dev(mask);
    model::KvCache cache;
    model::ForwardArgs a;
    a.position_ids = on_dev(pos);
    a.compute_logits = false;
    if (p > 0) {
      const torch::Tensor sel = index(groups_of);
      cache.keys.resize(layers);
      cache.values.resize(layers);
      for (int64_t l = 0; l < layers; ++l) {
        cache.keys[l] = keys[l].index_select(0, sel).narrow(2, p_max - p, p).contiguous();
        cache.values[l] = values[l].index_select(0, sel).narrow(2, p_max - p, p).contiguous();
      }
      cache.length = p;
      a.cache = &cache;
      a.attention_mask = torch::cat({prefix_mask.index_select(0, sel).narrow(1, p_max - p, p), mask}, 1);
    } else {
      a.attention_mask = mask;
    }
    const torch::Tensor h = model->forward(ids, a).last_hidden_state.to(torch::kFloat);  // [b, s, C]
    std::vector<int64_t> tail_index, prefix_index;
    std::vector<uint8_t> is_prefix;
    for (int64_t i = 0; i < b; ++i) {
      const Request& q = *rows[chunk[i]];
      const int64_t g = row_group[chunk[i]], len = static_cast<int64_t>(q.input.size()),
                    n = static_cast<int64_t>(q.target.size());
      row_first[chunk[i]] = static_cast<int64_t>(target.size());
      for (int64_t k = 0; k < n; ++k) {
        const int64_t at = len - n + k;  // position whose next-token distribution scores target[k]
        is_prefix.push_back(at < prefix[g]);
        (at < prefix[g] ? prefix_index : tail_index)
            .push_back(at < prefix[g] ? g * p_max + (p_max - prefix[g]) + at : i * s + (at - prefix[g]));
        target.push_back(q.target[k]);
      }
    }
    // Keep the order of `target`: interleave the prefix and tail rows as recorded.
    const torch::Tensor tails = h.reshape({-1, c}).index_select(0, index(tail_index));
    const torch::Tensor heads = prefix_index.empty()
                                    ? torch::empty({0, c}, h.options())
                                    : prefix_hidden.reshape({-1, c}).index_select(0, index(prefix_index));
    std::vector<int64_t> order;
    int64_t ti = 0, pi = 0;
    const auto n_tail = static_cast<int64_t>(tail_index.size());
    for (uint8_t f : is_prefix) order.push_back(f ? n_tail + pi++ : ti++);
    picked_parts.push_back(torch::cat({tails, heads}).index_select(0, index(order)));
  }
  const torch::Tensor picked = torch::cat(picked_parts).to(model->head_weight().scalar_type());
  const torch::Tensor tgt = index(target);

  // 3. LM head in chunks: [chunk, V] fp32 logits at a time instead of [N, V]; one copy to the host at the
  // end.
  const int64_t chunk = model::loss_chunk_rows(model->config().vocab_size());
  std::vector<torch::Tensor> lp_parts, am_parts;
  for (int64_t b = 0; b < picked.size(0); b += chunk) {
    const int64_t m = std::min(chunk, picked.size(0) - b);
    const torch::Tensor logits = model->lm_head(picked.narrow(0, b, m)).to(torch::kFloat);
    lp_parts.push_back(at::log_softmax(logits, -1).gather(1, tgt.narrow(0, b, m).unsqueeze(1)).squeeze(1));
    am_parts.push_back(logits.argmax(-1).to(torch::kFloat));  // exact: ids < 2^24
  }
  const auto n = static_cast<int64_t>(target.size());
  const torch::Tensor both =
      n == 0 ? torch::zeros({2, 0})
             : torch::stack({torch::cat(lp_parts), torch::cat(am_parts)}).cpu();  // [2, N]
  const float* lp = both.data_ptr<float>();
  const float* am = lp + n;

  std::vector<std::vector<Score>> out(g_count);
  for (size_t r = 0; r < rows.size(); ++r) {
    const Request& q = *rows[r];
    Score sc;
    sc.greedy = true;
    for (size_t i = 0; i < q.target.size(); ++i) {
      const auto k = static_cast<size_t>(row_first[r]) + i;
      sc.logprob += lp[k];
      sc.argmax.push_back(static_cast<int64_t>(am[k]));
      sc.greedy = sc.greedy && static_cast<int64_t>(am[k]) == q.target[i];
    }
    out[row_group[r]].push_back(std::move(sc));
  }
  return out;
}

}  // namespace

std::vector<std::vector<Score>> score(model::CausalLm& model, const std::vector<std::vector<Request>>& groups,
                                      int64_t pad) {
  torch::NoGradGuard no_grad;
  // The prefix caches of a part are held densely, [G, H, p_max, D] per layer for keys and values: cap them
  // (~1 GiB) by scoring the groups in consecutive parts. Parts depend only on `groups`, never on the rank.
  const auto& cfg = model->config();
  const int64_t per_token = 2 * cfg.num_layers() * cfg.num_kv_heads() * cfg.head_dim() * 4,
                budget = (int64_t{1} << 30) / per_token;
  std::vector<std::vector<Score>> out;
  for (size_t b = 0; b < groups.size();) {
    size_t e = b;
    int64_t p_max = 0;
    while (e < groups.size()) {
      const int64_t p = static_cast<int64_t>(groups[e][0].input.size());
      if (e > b && static_cast<int64_t>(e - b + 1) * std::max(p_max, p) > budget) break;
      p_max = std::max(p_max, p);
      ++e;
    }
    const std::vector<std::vector<Request>> part(groups.begin() + static_cast<std::ptrdiff_t>(b),
                                                 groups.begin() + static_cast<std::ptrdiff_t>(e));
    for (auto& r : score_part(model, part, pad)) out.push_back(std::move(r));
    b = e;
  }
  return out;
}

}  // namespace lethe::utility
