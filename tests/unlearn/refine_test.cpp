// ICU's per-pair judgement and stop rule (spec icu.md §5).
#include <gtest/gtest.h>

#include "unlearn/refine.h"

namespace lethe::unlearn {
namespace {

TEST(Refine, ForgottenWhenF1OrBleuBelowThreshold) {
  const Thresholds t;  // f1 0.3, bleu 0.01
  EXPECT_EQ(judge_pairs({0.5, 0.005, 0.5, 0.02}, {0.9, 0.9, 0.2, 0.31}, t),
            (std::vector<uint8_t>{1, 0, 0, 1}));
  // BLEU-only refinement when no BERTScore is given.
  EXPECT_EQ(judge_pairs({0.5, 0.005}, {}, t), (std::vector<uint8_t>{1, 0}));
  // A pair judged forgotten before but remembered now is back on: flags are recomputed, never sticky.
  EXPECT_EQ(judge_pairs({0.2}, {}, t), (std::vector<uint8_t>{1}));
}

TEST(Refine, StopRuleAndOrNoActiveAndMaxEpochs) {
  Thresholds t;  // acc 0.5994, el 0.0499, AND
  const std::vector<uint8_t> some = {1, 0}, none = {0, 0};
  EXPECT_EQ(stop_rule(0.5, 0.04, some, 1, 100, t), StopReason::kThresholds);
  EXPECT_EQ(stop_rule(0.5, 0.06, some, 1, 100, t), StopReason::kNone);
  EXPECT_EQ(stop_rule(0.7, 0.04, some, 1, 100, t), StopReason::kNone);
  EXPECT_EQ(stop_rule(0.7, 0.06, none, 1, 100, t), StopReason::kNoActivePair);
  EXPECT_EQ(stop_rule(0.7, 0.06, some, 100, 100, t), StopReason::kMaxEpochs);
  t.stop_or = true;  // the PO baseline's rule
  EXPECT_EQ(stop_rule(0.5, 0.06, some, 1, 100, t), StopReason::kThresholds);
  EXPECT_EQ(stop_reason_name(StopReason::kNoActivePair), "no_active_pair");
}

}  // namespace
}  // namespace lethe::unlearn
