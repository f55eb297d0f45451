// Log-likelihood requests, scored the way lm-evaluation-harness and ICU's classification_verbalizer score
// them (sum of the continuation tokens' log-probabilities under teacher forcing), but without their waste:
//   - the options of one example share their common token prefix: it is run once, its KV cache is copied
//     to every option, and only the differing tails are run on top of it;
//   - the LM head and log-softmax run only at the positions that predict continuation tokens, not at every
//     position of a padded [B, 512, V] tensor.
// The result equals a full forward of each request alone up to float rounding (the tests bound it at 1e-4).
#pragma once

#include <cstdint>
#include <vector>

#include "model/causal_lm.h"

namespace lethe::utility {

// One request: the model reads `input` and must predict its last `target.size()` positions' next tokens,
// i.e. input = whole[:-1], target = the continuation at the end of whole (already window-truncated).
struct Request {
  std::vector<int64_t> input;
  std::vector<int64_t> target;
};

struct Score {
  double logprob = 0;           // sum over the continuation
  bool greedy = false;          // every continuation token is the argmax (lm-eval's is_greedy)
  std::vector<int64_t> argmax;  // the argmax token at each continuation position
};

// Builds a request from context and continuation tokens: keep the last `window` tokens of
// context + continuation, drop the final one (ICU: window 512; lm-eval: max_length + 1). InputError-free:
// the caller checks that the continuation is shorter than the window.
Request make_request(const std::vector<int64_t>& context, const std::vector<int64_t>& continuation,
                     int64_t window);

// groups[g] = the requests of one example (its options); returns the scores in the same nesting. One
// batched prefix forward for all groups, one batched forward of all tails. pad: any valid token id.
std::vector<std::vector<Score>> score(model::CausalLm& model, const std::vector<std::vector<Request>>& groups,
                                      int64_t pad);

}  // namespace lethe::utility
