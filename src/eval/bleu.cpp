#include "eval/bleu.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <map>

namespace lethe::eval {
namespace {

using Gram = std::vector<std::string>;

std::map<Gram, int64_t> ngram_counts(const std::vector<std::string>& s, int n) {
  std::map<Gram, int64_t> c;
  for (size_t i = 0; i + static_cast<size_t>(n) <= s.size(); ++i)
    ++c[Gram(s.begin() + static_cast<std::ptrdiff_t>(i), s.begin() + static_cast<std::ptrdiff_t>(i) + n)];
  return c;
}

// Python's math.fsum: the correctly rounded sum (Shewchuk's exact partials), so the result matches nltk to
// the last bit.
double fsum(const std::vector<double>& xs) {
  std::vector<double> partials;
  for (double x : xs) {
    size_t i = 0;
    for (double y : partials) {
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0) partials[i++] = lo;
      x = hi;
    }
    partials.resize(i);
    partials.push_back(x);
  }
  // Sum the partials from the top, with Python's half-way correction.
  if (partials.empty()) return 0.0;
  size_t n = partials.size();
  double hi = partials[--n], lo = 0;
  while (n > 0) {
    const double x = hi, y = partials[--n];
    hi = x + y;
    lo = y - (hi - x);
    if (lo != 0.0) break;
  }
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const double y = lo * 2, x = hi + y;
    if (y == x - hi) hi = x;
  }
  return hi;
}

}  // namespace

double sentence_bleu(const std::vector<std::vector<std::string>>& references,
                     const std::vector<std::string>& hypothesis, int max_n) {
  std::vector<int64_t> num(static_cast<size_t>(max_n) + 1, 0), den(static_cast<size_t>(max_n) + 1, 0);
  for (int n = 1; n <= max_n; ++n) {
    const auto counts = ngram_counts(hypothesis, n);
    std::map<Gram, int64_t> max_ref;
    for (const auto& ref : references)
      for (const auto& [g, c] : ngram_counts(ref, n)) max_ref[g] = std::max(max_ref[g], c);
    int64_t clipped = 0, total = 0;
    for (const auto& [g, c] : counts) {
      const auto it = max_ref.find(g);
      clipped += std::min(c, it == max_ref.end() ? int64_t{0} : it->second);
      total += c;
    }
    num[static_cast<size_t>(n)] = clipped;
    den[static_cast<size_t>(n)] = std::max<int64_t>(1, total);
  }
  // Brevity penalty against the reference length closest to the hypothesis (shorter wins a tie).
  const auto c = static_cast<int64_t>(hypothesis.size());
  int64_t r = 0, best = -1;
  for (const auto& ref : references) {
    const auto len = static_cast<int64_t>(ref.size());
    const int64_t d = len > c ? len - c : c - len;
    if (best < 0 || d < best || (d == best && len < r)) best = d, r = len;
  }
  const double bp = c > r    ? 1.0
                    : c == 0 ? 0.0
                             : std::exp(1.0 - static_cast<double>(r) / static_cast<double>(c));
  if (num[1] == 0) return 0.0;
  std::vector<double> terms;
  const double w = 1.0 / max_n;
  for (int n = 1; n <= max_n; ++n) {
    const auto i = static_cast<size_t>(n);
    const double p = num[i] != 0 ? static_cast<double>(num[i]) / static_cast<double>(den[i]) : DBL_MIN;
    terms.push_back(w * std::log(p));
  }
  return bp * std::exp(fsum(terms));
}

}  // namespace lethe::eval
