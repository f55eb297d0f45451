#include "unlearn/refine.h"

#include <algorithm>

namespace lethe::unlearn {

std::vector<uint8_t> judge_pairs(const std::vector<double>& bleu, const std::vector<double>& bert_f1,
                                 const Thresholds& t) {
  std::vector<uint8_t> flags(bleu.size());
  for (size_t i = 0; i < bleu.size(); ++i) {
    const bool forgotten = bleu[i] < t.bleu || (!bert_f1.empty() && bert_f1[i] < t.f1);
    flags[i] = forgotten ? 0 : 1;
  }
  return flags;
}

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone:
      return "none";
    case StopReason::kThresholds:
      return "thresholds";
    case StopReason::kNoActivePair:
      return "no_active_pair";
    case StopReason::kMaxEpochs:
      return "max_epochs";
  }
  return "?";
}

StopReason stop_rule(double ma, double el, const std::vector<uint8_t>& flags, int64_t epoch,
                     int64_t max_epochs, const Thresholds& t) {
  const bool ma_ok = ma < t.acc, el_ok = el < t.el;
  if (t.stop_or ? (ma_ok || el_ok) : (ma_ok && el_ok)) return StopReason::kThresholds;
  if (std::none_of(flags.begin(), flags.end(), [](uint8_t f) { return f != 0; }))
    return StopReason::kNoActivePair;
  if (epoch >= max_epochs) return StopReason::kMaxEpochs;
  return StopReason::kNone;
}

}  // namespace lethe::unlearn
