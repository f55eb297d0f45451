// ICU's iterative refinement (spec icu.md §5): after every validation each pair is re-judged — forgotten
// pairs leave training, pairs that drift back toward the reference return — and the stop rule is checked.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace lethe::unlearn {

struct Thresholds {
  double f1 = 0.3, bleu = 0.01;      // per pair: forgotten ⇔ BERTScore F1 < f1 or BLEU < bleu
  double acc = 0.5994, el = 0.0499;  // stop: MA < acc and (or) EL < el
  bool stop_or = false;
};

// 1 = still remembered (the pair trains), 0 = forgotten. bert_f1 empty = BLEU-only refinement.
std::vector<uint8_t> judge_pairs(const std::vector<double>& bleu, const std::vector<double>& bert_f1,
                                 const Thresholds& t);

enum class StopReason { kNone, kThresholds, kNoActivePair, kMaxEpochs };
std::string_view stop_reason_name(StopReason r);

// After training epoch `epoch` (1-based): mean MA and EL of the forget set, the flags just judged.
StopReason stop_rule(double ma, double el, const std::vector<uint8_t>& flags, int64_t epoch,
                     int64_t max_epochs, const Thresholds& t);

}  // namespace lethe::unlearn
