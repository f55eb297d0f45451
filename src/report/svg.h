// A small, dependency-free SVG line chart: per-epoch curves with mean ± std bands for `lethe report`.
#pragma once

#include <string>
#include <vector>

namespace lethe::report {

struct Band {
  std::string label;
  std::vector<double> x, mean, lo, hi;  // equal length; lo/hi = mean ∓ std (equal to mean for one run)
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Band> bands;
};

// The chart as a standalone SVG document (640 x 400). Non-finite points are left out.
std::string render_svg(const Chart& chart);

}  // namespace lethe::report
