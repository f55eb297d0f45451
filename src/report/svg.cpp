#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace lethe::report {
namespace {

constexpr double kW = 640, kH = 400, kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;
const char* const kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

// 1, 2 or 5 times a power of ten, so that [lo, hi] gets about `want` ticks.
double nice_step(double lo, double hi, int want) {
  const double raw = (hi - lo) / want, p = std::pow(10.0, std::floor(std::log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  void settle() {  // an empty or flat range still gets an axis
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  }
};

}  // namespace

std::string render_svg(const Chart& c) {
  Range xr, yr;
  for (const Band& b : c.bands)
    for (size_t i = 0; i < b.x.size(); ++i) xr.add(b.x[i]), yr.add(b.lo[i]), yr.add(b.hi[i]);
  xr.settle();
  yr.settle();
  const double ys = nice_step(yr.lo, yr.hi, 5), y0 = std::floor(yr.lo / ys) * ys,
               y1 = std::ceil(yr.hi / ys) * ys;
  const double xs = std::max(1.0, nice_step(xr.lo, xr.hi, 8));
  auto px = [&](double x) { return kLeft + (x - xr.lo) / (xr.hi - xr.lo) * (kW - kLeft - kRight); };
  auto py = [&](double y) { return kH - kBottom - (y - y0) / (y1 - y0) * (kH - kTop - kBottom); };

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{3}</text>\n",
      kW, kH, kW / 2, escape(c.title));
  // Grid, ticks and axis labels.
  for (double y = y0; y <= y1 + ys / 2; y += ys)
    s += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/><text x=\"{3}\" "
        "y=\"{4:.1f}\" "
        "text-anchor=\"end\">{5:.4g}</text>\n",
        kLeft, kW - kRight, py(y), kLeft - 6, py(y) + 4, std::abs(y) < ys * 1e-9 ? 0.0 : y);
  for (double x = std::ceil(xr.lo / xs) * xs; x <= xr.hi + xs / 2; x += xs)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.4g}</text>\n", px(x),
                     kH - kBottom + 16, x);
  s += fmt::format(
      "<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"black\"/><line x1=\"{0}\" x2=\"{3}\" "
      "y1=\"{2}\" "
      "y2=\"{2}\" stroke=\"black\"/>\n<text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">{6}</text>\n"
      "<text transform=\"translate(16 {7}) rotate(-90)\" text-anchor=\"middle\">{8}</text>\n",
      kLeft, kTop, kH - kBottom, kW - kRight, (kLeft + kW - kRight) / 2, kH - 12, escape(c.x_label),
      (kTop + kH - kBottom) / 2, escape(c.y_label));
  // Bands (mean ± std) under the mean lines, then a legend.
  for (size_t k = 0; k < c.bands.size(); ++k) {
    const Band& b = c.bands[k];
    const char* colour = kColours[k % std::size(kColours)];
    std::string upper, lower, line;
    for (size_t i = 0; i < b.x.size(); ++i) {
      if (!std::isfinite(b.mean[i])) continue;
      line += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.mean[i]));
      upper += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.hi[i]));
    }
    for (size_t i = b.x.size(); i-- > 0;)
      if (std::isfinite(b.mean[i])) lower += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.lo[i]));
    s += fmt::format("<polygon points=\"{}{}\" fill=\"{}\" fill-opacity=\"0.2\" stroke=\"none\"/>\n", upper,
                     lower, colour);
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", line,
                     colour);
    const double ly = kTop + 6 + 16.0 * static_cast<double>(k);
    s += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"2\"/><text "
        "x=\"{4}\" "
        "y=\"{5}\">{6}</text>\n",
        kW - kRight - 150, kW - kRight - 130, ly, colour, kW - kRight - 124, ly + 4, escape(b.label));
  }
  return s + "</svg>\n";
}

}  // namespace lethe::report
