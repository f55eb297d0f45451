#include "utility/tasks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/generate.h"
#include "model/lm_loss.h"
#include "utility/normalize.h"

namespace lethe::utility {
namespace {

std::vector<int64_t> widen(const std::vector<int32_t>& v) {
  return {v.begin(), v.end()};
}

// tpl with every `key` replaced by value (a value that itself contains the key is not re-expanded).
std::string fill(const std::string& tpl, const std::string& key, const std::string& value) {
  std::string out = tpl;
  for (size_t p = 0; (p = out.find(key, p)) != std::string::npos; p += value.size())
    out.replace(p, key.size(), value);
  return out;
}

}  // namespace

void check_fits(const Suite& suite, int64_t max_positions) {
  LETHE_CHECK_INPUT(suite.window - 1 <= max_positions,
                    "{}: window {} makes the model read {} tokens, but it has {} positions; set window <= {}",
                    suite.source.string(), suite.window, suite.window - 1, max_positions, max_positions + 1);
  LETHE_CHECK_INPUT(suite.ppl_window <= max_positions, "{}: ppl_window {} exceeds the model's {} positions",
                    suite.source.string(), suite.ppl_window, max_positions);
  LETHE_CHECK_INPUT(suite.max_new_tokens < max_positions,
                    "{}: max_new_tokens {} leaves no room in {} positions", suite.source.string(),
                    suite.max_new_tokens, max_positions);
}

TaskRunner::TaskRunner(const Suite& suite, TaskSpec spec, TaskData data, const text::Tokenizer& tokenizer,
                       const model::ModelConfig& arch)
    : suite_(suite),
      spec_(std::move(spec)),
      data_(std::move(data)),
      tok_(tokenizer),
      eos_(tokenizer.eos_id()) {
  const int64_t max_positions = arch.max_position_embeddings();
  check_fits(suite_, max_positions);
  LETHE_CHECK_INPUT(tok_.vocab_size() <= arch.vocab_size(),
                    "the tokenizer has {} ids but the model only {}: use the model's own tokenizer",
                    tok_.vocab_size(), arch.vocab_size());
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
  } else {                                                 // lm-eval _encode_pair
    const size_t cut = rstrip_whitespace(context).size();  // Python's rstrip(): Unicode spaces too
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

std::string TaskRunner::decode(const std::vector<int64_t>& ids) const {
  std::vector<int32_t> known;
  for (int64_t id : ids)
    if (id >= 0 && id < tok_.vocab_size()) known.push_back(static_cast<int32_t>(id));
  return tok_.decode(known, true);
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

void TaskRunner::run(model::CausalLm& model, int64_t b, std::vector<double>& values) const {
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
        const std::string p = strip_whitespace(clean_up_tokenization(decode(s.argmax))),
                          g = strip_whitespace(clean_up_tokenization(decode(target)));
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
      o.eos_token_ids = {eos_};
      o.pad_token_id = eos_;
      // Generation ends early once every row has produced EOS: the width is what came back. The rows go to
      // the model's device and the generated tokens come back in one copy, to be decoded here.
      const torch::Device dev = model->head_weight().device();
      const torch::Tensor seq = model::generate(model, ids.to(dev), mask.to(dev), o).sequences;
      const torch::Tensor out = seq.narrow(1, t_max, seq.size(1) - t_max).cpu().contiguous();
      const auto oa = out.accessor<int64_t, 2>();
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int64_t> gen;
        for (int64_t k = 0; k < out.size(1); ++k) {
          const int64_t id = oa[r][k];
          if (id == eos_) break;
          gen.push_back(id);
        }
        std::string text = clean_up_tokenization(decode(gen));
        if (const size_t cut = text.find("\nUser "); cut != std::string::npos) text.resize(cut);
        const auto slot = static_cast<size_t>(batch[r] * per_unit_);
        values[slot] = squad_f1(text, targets_[batch[r]]);
        values[slot + 1] = static_cast<double>(gen.size());
        for (size_t k = 0; k < gen.size(); ++k) values[slot + 2 + k] = gen[k];
      }
      break;
    }
    case TaskKind::kPerplexity: {
      // One window at a time ([1, T] in, the head in row chunks), the batch's mean losses read back at once.
      const torch::Device dev = model->head_weight().device();
      std::vector<torch::Tensor> losses;
      for (int64_t w : batch) {
        const torch::Tensor ids = torch::tensor(windows_[w], torch::kLong).unsqueeze(0).to(dev);  // [1, T]
        model::ForwardArgs a;
        a.compute_logits = false;
        const torch::Tensor h = model->forward(ids, a).last_hidden_state;  // [1, T, C]
        losses.push_back(-model::next_token_logprobs_chunked(h, model->head_weight(), ids).mean());
      }
      const torch::Tensor host = torch::stack(losses).to(torch::kDouble).cpu();
      for (size_t k = 0; k < batch.size(); ++k) {
        values[static_cast<size_t>(batch[k] * per_unit_)] = host[static_cast<int64_t>(k)].item<double>();
        values[static_cast<size_t>(batch[k] * per_unit_ + 1)] =
            static_cast<double>(windows_[batch[k]].size());
      }
      break;
    }
  }
}

}  // namespace lethe::utility
