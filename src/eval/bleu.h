// Sentence BLEU with nltk's semantics (nltk.translate.bleu_score.sentence_bleu, 3.9): uniform weights over
// 1..max_n-grams, clipped ("modified") precisions, brevity penalty against the closest reference length, no
// smoothing — nltk's method0, where a zero precision n ≥ 2 becomes the smallest positive double (so BLEU is a
// tiny positive number, not 0) and a zero unigram precision returns 0.
#pragma once

#include <string>
#include <vector>

namespace lethe::eval {

double sentence_bleu(const std::vector<std::vector<std::string>>& references,
                     const std::vector<std::string>& hypothesis, int max_n = 4);

}  // namespace lethe::eval
