#include "utility/tasks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "utility/normalize.h"

// TaskRunner::finish: metrics, standard errors and the per-example table from the summed value buffers.
namespace lethe::utility {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

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

TaskResult TaskRunner::finish(const std::vector<double>& v) const {
  TaskResult r;
  r.name = spec_.name;
  r.kind = data_.kind;
  r.group = spec_.group;
  r.column = spec_.column;
  r.headline = headline_metric(data_.kind);
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
        std::vector<int64_t> ids;
        for (int64_t k = 0; k < static_cast<int64_t>(at(i, 1)); ++k)
          ids.push_back(static_cast<int64_t>(at(i, 2 + k)));
        std::string text = clean_up_tokenization(decode(ids));
        if (const size_t cut = text.find("\nUser "); cut != std::string::npos) text.resize(cut);
        gen.push_back(std::move(text));
        lines.push_back(static_cast<double>(data_.lines[i]));
      }
      r.n = units_;
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
