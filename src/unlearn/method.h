// Unlearning methods and their loss weights as plain values (no torch): shared by the config and the
// objectives (objective.h).
#pragma once

#include <string_view>
#include <utility>

#include "core/config_schema.h"

namespace lethe::unlearn {

enum class Method {
  kIcu,   // −uw·CE(forget) + lw·CE(neighbour) + kl·H(p_orig, q) on neighbours
  kGa,    // Knowledge Unlearning's gradient ascent (KUMPR): −uw·CE(forget)
  kLlmu,  // −uw·CE(forget) + lw·CE(forget inputs, neighbour labels) + kl·H(p_orig, q) on neighbours
  kPo,    // +uw·CE(forget inputs, neighbour labels) + lw·CE(neighbour)
};

// The stop logic each method's reference code uses: PO stops when MA *or* EL is below its threshold
// (ICU's train_po.py), the others when both are (ICU, KU, ICU's single-process LLMU; its DeepSpeed LLMU uses
// or, which the 1.3B/2.7B LLMU presets set explicitly).
constexpr bool reference_stops_on_either(Method m) {
  return m == Method::kPo;
}

struct Weights {
  double uw = 1.0, lw = 0.5, kl = 1.0;
};

}  // namespace lethe::unlearn

namespace lethe {
template <>
struct EnumNames<unlearn::Method> {
  static constexpr std::pair<unlearn::Method, std::string_view> values[] = {{unlearn::Method::kIcu, "icu"},
                                                                            {unlearn::Method::kGa, "ga"},
                                                                            {unlearn::Method::kLlmu, "llmu"},
                                                                            {unlearn::Method::kPo, "po"}};
};
}  // namespace lethe
