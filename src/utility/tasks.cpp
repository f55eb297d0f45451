#include "utility/tasks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/generate.h"
#include "utility/normalize.h"

namespace lethe::utility {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<int64_t> widen(const std::vector<int32_t>& v) {
  return {v.begin(), v.end()};
}

std::string fill(const std::string& tpl, const std::string& key, const std::string& value) {
  std::string out = tpl;
  for (size_t p; (p = out.find(key)) != std::string::npos;) out.replace(p, key.size(), value);
  return out;
}

double mean(const std::vector<double>& x) {
  return x.empty() ? kNaN : std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

// lm-eval's stderr of a mean: sample standard deviation (ddof 1) / sqrt(n).
double stderr_of_mean(const std::vector<double>& x) {
  if (x.size() < 2) return kNaN;
  const double m = mean(x);
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  const auto n = static_cast<double>(x.size());
  return std::sqrt(ss / (n - 1) / n);
}

std::string json_list(const std::vector<std::string>& v) {
  return nlohmann::json(v).dump();
}

}  // namespace

double TaskResult::metric(const std::string& key) const {
  for (const auto& [k, v] : metrics)
    if (k == key) return v;
  return kNaN;
}

TaskRunner::TaskRunner(const Suite& suite, TaskSpec spec, TaskData data, const text::Gpt2Tokenizer& tokenizer,
                       int64_t eos, int64_t max_positions)
    : suite_(suite), spec_(std::move(spec)), data_(std::move(data)), tok_(tokenizer), eos_(eos) {
  LETHE_CHECK_INPUT(suite_.window - 1 <= max_positions,
                    "{}: window {} makes the model read {} tokens, but it has {} positions; set window <= {}",
                    suite_.source.string(), suite_.window, suite_.window - 1, max_positions,
                    max_positions + 1);
  LETHE_CHECK_INPUT(suite_.ppl_window <= max_positions, "{}: ppl_window {} exceeds the model's {} positions",
                    suite_.source.string(), suite_.ppl_window, max_positions);
  LETHE_CHECK_INPUT(suite_.max_new_tokens < max_positions,
                    "{}: max_new_tokens {} leaves no room in {} positions", suite_.source.string(),
                    suite_.max_new_tokens, max_positions);
  // Dialogue prompts keep their first tokens (ICU: 512) and must leave room for the generated ones.
  const int64_t prompt_cap = std::min(suite_.window, max_positions - suite_.max_new_tokens);
  std::vector<int64_t> lengths;
  switch (data_.kind) {
    case TaskKind::kChoice:
      for (const ChoiceItem& it : data_.items) {
        offsets_.push_back(units_);
        std::vector<Request> rs;
        int64_t len = 0;
        for (size_t j = 0; j < it.options.size(); ++j) {
          const std::string& ctx = it.contexts.size() == 1 ? it.contexts[0] : it.contexts[j];
          const std::string cont =
              it.literal[j] ? it.options[j] : fill(spec_.choice, "{choice}", it.options[j]);
          auto [c, t] = encode_pair(fill(spec_.prompt, "{context}", ctx), cont, it.line);
          rs.push_back(make_request(c, t, suite_.window));
          len += static_cast<int64_t>(rs.back().input.size());
        }
        units_ += static_cast<int64_t>(rs.size());
        requests_.push_back(std::move(rs));
        lengths.push_back(len);
      }
      per_unit_ = 2;  // logprob, greedy
      break;
    case TaskKind::kLambada:
      for (size_t i = 0; i < data_.texts.size(); ++i) {
        auto [context, target] = lambada_split(data_.texts[i]);
        auto [c, t] = encode_pair(fill(spec_.prompt, "{context}", context), target, data_.lines[i]);
        requests_.push_back({make_request(c, t, suite_.window)});
        lengths.push_back(static_cast<int64_t>(requests_.back()[0].input.size()));
      }
      units_ = static_cast<int64_t>(requests_.size());
      per_unit_ = 4;  // logprob, correct, f1, all tokens greedy
      break;
    case TaskKind::kDialogue:
      for (size_t i = 0; i < data_.dialogues.size(); ++i) {
        auto [prompt, target] = dialogue_prompt(data_.dialogues[i]);
        std::vector<int64_t> p = widen(tok_.encode(fill(spec_.prompt, "{context}", prompt)));
        if (static_cast<int64_t>(p.size()) > prompt_cap) p.resize(prompt_cap);  // ICU keeps the first 512
        while (!p.empty() && p.back() == eos_) p.pop_back();
        LETHE_CHECK_INPUT(!p.empty(), "task '{}': {} row {}: the dialogue prompt is empty", spec_.name,
                          spec_.file.string(), data_.lines[i]);
        std::vector<int32_t> t = tok_.encode(target);
        if (static_cast<int64_t>(t.size()) > suite_.window) t.resize(suite_.window);
        targets_.push_back(clean_up_tokenization(tok_.decode(t, true)));
        lengths.push_back(static_cast<int64_t>(p.size()));
        prompts_.push_back(std::move(p));
      }
      units_ = static_cast<int64_t>(prompts_.size());
      per_unit_ = 2 + suite_.max_new_tokens;  // f1, generated length, the generated ids
      break;
    case TaskKind::kPerplexity: {
      std::string joined;
      for (size_t i = 0; i < data_.texts.size(); ++i) joined += (i ? "\n\n" : "") + data_.texts[i];
      const std::vector<int64_t> ids = widen(tok_.encode(joined));
      for (size_t b = 0; b < ids.size(); b += static_cast<size_t>(suite_.ppl_window)) {
        const size_t e = std::min(ids.size(), b + static_cast<size_t>(suite_.ppl_window));
        if (e - b >= 2)
          windows_.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(b),
                                ids.begin() + static_cast<std::ptrdiff_t>(e));
      }
      LETHE_CHECK_INPUT(!windows_.empty(), "task '{}': {} holds fewer than 2 tokens", spec_.name,
                        spec_.file.string());
      units_ = static_cast<int64_t>(windows_.size());
      per_unit_ = 2;  // mean loss, tokens
      for (int64_t w = 0; w < units_; w += suite_.batch_size) {
        std::vector<int64_t> b(static_cast<size_t>(std::min(suite_.batch_size, units_ - w)));
        std::iota(b.begin(), b.end(), w);
        batches_.push_back(std::move(b));
      }
      return;
    }
  }
  cut_batches(lengths);
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> TaskRunner::encode_pair(std::string context,
                                                                              std::string continuation,
                                                                              int64_t line) const {
  const auto where = [&] {
    return fmt::format("task '{}': {} line/row {}", spec_.name, spec_.file.string(), line);
  };
  std::vector<int64_t> c, t;
  if (suite_.encoding == Encoding::kSeparate) {  // ICU: tokenised apart, first `window` kept, pads popped
    c = widen(tok_.encode(context));
    t = widen(tok_.encode(continuation));
    for (auto* v : {&c, &t}) {
      if (static_cast<int64_t>(v->size()) > suite_.window) v->resize(suite_.window);
      while (!v->empty() && v->back() == eos_) v->pop_back();
    }
    // An option as long as the window leaves no context to predict its first token from (ICU's slicing
    // breaks there); keep its first window - 1 tokens.
    if (static_cast<int64_t>(t.size()) >= suite_.window) t.resize(suite_.window - 1);
    LETHE_CHECK_INPUT(!c.empty(), "{}: the context is empty", where());
  } else {  // lm-eval _encode_pair
    const size_t keep = context.find_last_not_of(" \t\n\r\f\v");
    const size_t cut = keep == std::string::npos ? 0 : keep + 1;
    continuation = context.substr(cut) + continuation;
    context.resize(cut);
    if (context.empty()) {
      c = {eos_};
      t = widen(tok_.encode(continuation));
    } else {
      const std::vector<int64_t> whole = widen(tok_.encode(context + continuation));
      c = widen(tok_.encode(context));
      t.assign(whole.begin() + static_cast<std::ptrdiff_t>(std::min(c.size(), whole.size())), whole.end());
    }
  }
  LETHE_CHECK_INPUT(!t.empty(), "{}: the continuation is empty", where());
  LETHE_CHECK_INPUT(static_cast<int64_t>(t.size()) < suite_.window,
                    "{}: the continuation has {} tokens; the window ({}) must be longer", where(), t.size(),
                    suite_.window);
  return {c, t};
}

// Longest examples first (little padding per batch, the slowest batches start first); ties keep file order.
void TaskRunner::cut_batches(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(suite_.batch_size))
    batches_.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                          order.begin() + static_cast<std::ptrdiff_t>(std::min(
                                              order.size(), i + static_cast<size_t>(suite_.batch_size))));
}

void TaskRunner::run(model::GptNeo& model, int64_t b, std::vector<double>& values) const {
  torch::NoGradGuard no_grad;
  const std::vector<int64_t>& batch = batches_.at(static_cast<size_t>(b));
  switch (data_.kind) {
    case TaskKind::kChoice: {
      std::vector<std::vector<Request>> groups;
      for (int64_t i : batch) groups.push_back(requests_[i]);
      const auto scores = score(model, groups, eos_);
      for (size_t k = 0; k < batch.size(); ++k)
        for (size_t j = 0; j < scores[k].size(); ++j) {
          const auto slot = static_cast<size_t>((offsets_[batch[k]] + static_cast<int64_t>(j)) * per_unit_);
          values[slot] = scores[k][j].logprob;
          values[slot + 1] = scores[k][j].greedy ? 1.0 : 0.0;
        }
      break;
    }
    case TaskKind::kLambada: {
      std::vector<std::vector<Request>> groups;
      for (int64_t i : batch) groups.push_back(requests_[i]);
      const auto scores = score(model, groups, eos_);
      for (size_t k = 0; k < batch.size(); ++k) {
        const Score& s = scores[k][0];
        const auto& target = requests_[batch[k]][0].target;
        const std::vector<int32_t> pred(s.argmax.begin(), s.argmax.end()), gold(target.begin(), target.end());
        const std::string p = strip_whitespace(clean_up_tokenization(tok_.decode(pred, true))),
                          g = strip_whitespace(clean_up_tokenization(tok_.decode(gold, true)));
        const bool em = normalize_answer(p) == normalize_answer(g);
        const auto slot = static_cast<size_t>(batch[k] * per_unit_);
        values[slot] = s.logprob;
        values[slot + 1] = s.greedy || em ? 1.0 : 0.0;
        values[slot + 2] = squad_f1(p, g);
        values[slot + 3] = s.greedy ? 1.0 : 0.0;
      }
      break;
    }
    case TaskKind::kDialogue: {
      int64_t t_max = 0;
      for (int64_t i : batch) t_max = std::max(t_max, static_cast<int64_t>(prompts_[i].size()));
      const auto rows = static_cast<int64_t>(batch.size());
      torch::Tensor ids = torch::full({rows, t_max}, eos_, torch::kLong),
                    mask = torch::zeros({rows, t_max}, torch::kLong);
      for (int64_t r = 0; r < rows; ++r) {  // left padded with an attention mask, as ICU's generate call
        const auto& p = prompts_[batch[r]];
        const auto n = static_cast<int64_t>(p.size());
        ids[r].narrow(0, t_max - n, n).copy_(torch::tensor(p, torch::kLong));
        mask[r].narrow(0, t_max - n, n).fill_(1);
      }
      model::GenerateOptions o;
      o.max_new_tokens = suite_.max_new_tokens;
      o.eos_token_id = eos_;
      o.pad_token_id = eos_;
      const torch::Tensor out =
          model::generate(model, ids, mask, o).sequences.narrow(1, t_max, suite_.max_new_tokens).contiguous();
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int32_t> gen;
        for (int64_t k = 0; k < out.size(1); ++k) {
          const int64_t id = out[r][k].item<int64_t>();
          if (id == eos_) break;
          gen.push_back(static_cast<int32_t>(id));
        }
        std::string text = clean_up_tokenization(tok_.decode(gen, true));
        if (const size_t cut = text.find("\nUser "); cut != std::string::npos) text.resize(cut);
        const auto slot = static_cast<size_t>(batch[r] * per_unit_);
        values[slot] = squad_f1(text, targets_[batch[r]]);
        values[slot + 1] = static_cast<double>(gen.size());
        for (size_t k = 0; k < gen.size(); ++k) values[slot + 2 + k] = gen[k];
      }
      break;
    }
    case TaskKind::kPerplexity: {
      for (int64_t w : batch) {  // one window at a time: [1, T] in, [T-1, V] fp32 logits at most
        const auto& win = windows_[w];
        const torch::Tensor ids = torch::tensor(win, torch::kLong).unsqueeze(0);
        model::ForwardArgs a;
        a.compute_logits = false;
        const torch::Tensor h = model->forward(ids, a).last_hidden_state[0];
        const auto t = static_cast<int64_t>(win.size());
        const torch::Tensor logits = model->lm_head(h.narrow(0, 0, t - 1)).to(torch::kFloat);
        const double loss = at::cross_entropy_loss(logits, ids[0].narrow(0, 1, t - 1)).item<double>();
        values[static_cast<size_t>(w * per_unit_)] = loss;
        values[static_cast<size_t>(w * per_unit_ + 1)] = static_cast<double>(t);
      }
      break;
    }
  }
}

TaskResult TaskRunner::finish(const std::vector<double>& v) const {
  TaskResult r;
  r.name = spec_.name;
  r.kind = data_.kind;
  r.group = spec_.group;
  r.column = spec_.column;
  const auto at = [&](int64_t unit, int64_t k) { return v[static_cast<size_t>(unit * per_unit_ + k)]; };
  std::vector<double> lines;
  switch (data_.kind) {
    case TaskKind::kChoice: {
      size_t width = 0;
      for (const auto& it : data_.items) width = std::max(width, it.options.size());
      std::vector<double> gold, pred, pred_norm, correct, correct_norm;
      std::vector<std::vector<double>> ll(width), greedy(width);
      for (size_t i = 0; i < data_.items.size(); ++i) {
        const ChoiceItem& it = data_.items[i];
        size_t best = 0, best_norm = 0;
        for (size_t j = 0; j < it.options.size(); ++j) {
          const double l = at(offsets_[i] + static_cast<int64_t>(j), 0);
          if (l > at(offsets_[i] + static_cast<int64_t>(best), 0)) best = j;
          const auto norm = [&](size_t k) {
            return at(offsets_[i] + static_cast<int64_t>(k), 0) /
                   static_cast<double>(std::max<int64_t>(1, it.norm_chars[k]));
          };
          if (norm(j) > norm(best_norm)) best_norm = j;
        }
        for (size_t j = 0; j < width; ++j) {
          ll[j].push_back(j < it.options.size() ? at(offsets_[i] + static_cast<int64_t>(j), 0) : kNaN);
          greedy[j].push_back(j < it.options.size() ? at(offsets_[i] + static_cast<int64_t>(j), 1) : kNaN);
        }
        lines.push_back(static_cast<double>(it.line));
        gold.push_back(static_cast<double>(it.gold));
        pred.push_back(static_cast<double>(best));
        pred_norm.push_back(static_cast<double>(best_norm));
        correct.push_back(static_cast<int64_t>(best) == it.gold ? 1.0 : 0.0);
        correct_norm.push_back(static_cast<int64_t>(best_norm) == it.gold ? 1.0 : 0.0);
      }
      r.n = static_cast<int64_t>(data_.items.size());
      r.headline = "acc";
      r.metrics = {{"acc", mean(correct)},
                   {"acc_stderr", stderr_of_mean(correct)},
                   {"acc_norm", mean(correct_norm)},
                   {"acc_norm_stderr", stderr_of_mean(correct_norm)}};
      r.columns = {{"line", lines},          {"gold", gold},       {"pred", pred},
                   {"pred_norm", pred_norm}, {"correct", correct}, {"correct_norm", correct_norm}};
      for (size_t j = 0; j < width; ++j) {
        r.columns.emplace_back(fmt::format("ll_{}", j), ll[j]);
        r.columns.emplace_back(fmt::format("greedy_{}", j), greedy[j]);
      }
      break;
    }
    case TaskKind::kLambada: {
      std::vector<double> ll, correct, f1, exact, nll;
      for (int64_t i = 0; i < units_; ++i) {
        ll.push_back(at(i, 0));
        nll.push_back(-at(i, 0));
        correct.push_back(at(i, 1));
        f1.push_back(at(i, 2));
        exact.push_back(at(i, 3));
        lines.push_back(static_cast<double>(data_.lines[i]));
      }
      r.n = units_;
      r.headline = "acc";
      r.metrics = {{"acc", mean(correct)}, {"acc_stderr", stderr_of_mean(correct)},
                   {"f1", mean(f1)},       {"f1_stderr", stderr_of_mean(f1)},
                   {"loss", mean(nll)},    {"ppl", std::exp(mean(nll))}};
      r.columns = {{"line", lines}, {"ll", ll}, {"correct", correct}, {"greedy", exact}, {"f1", f1}};
      break;
    }
    case TaskKind::kDialogue: {
      std::vector<double> f1, len;
      std::vector<std::string> gen;
      for (int64_t i = 0; i < units_; ++i) {
        f1.push_back(at(i, 0));
        len.push_back(at(i, 1));
        std::vector<int32_t> ids;
        for (int64_t k = 0; k < static_cast<int64_t>(at(i, 1)); ++k)
          ids.push_back(static_cast<int32_t>(at(i, 2 + k)));
        std::string text = clean_up_tokenization(tok_.decode(ids, true));
        if (const size_t cut = text.find("\nUser "); cut != std::string::npos) text.resize(cut);
        gen.push_back(std::move(text));
        lines.push_back(static_cast<double>(data_.lines[i]));
      }
      r.n = units_;
      r.headline = "f1";
      r.metrics = {{"f1", mean(f1)}, {"f1_stderr", stderr_of_mean(f1)}};
      r.columns = {{"row", lines}, {"f1", f1}, {"new_tokens", len}};
      r.strings = {{"generation", json_list(gen)}, {"target", json_list(targets_)}};
      break;
    }
    case TaskKind::kPerplexity: {
      std::vector<double> loss, tokens;
      for (int64_t w = 0; w < units_; ++w) {
        loss.push_back(at(w, 0));
        tokens.push_back(at(w, 1));
      }
      const double m = mean(loss), se = stderr_of_mean(loss);
      r.n = units_;
      r.headline = "ppl";
      r.metrics = {{"ppl", std::exp(m)},
                   {"ppl_stderr", std::exp(m) * se},
                   {"loss", m},
                   {"loss_stderr", se},
                   {"tokens", std::accumulate(tokens.begin(), tokens.end(), 0.0)}};
      r.columns = {{"loss", loss}, {"tokens", tokens}};
      break;
    }
  }
  return r;
}

}  // namespace lethe::utility
