#include "text/cleanup.h"

#include <array>
#include <utility>

namespace lethe::text {

std::string clean_up_tokenization(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kRules = {{{" .", "."},
                                                                                            {" ?", "?"},
                                                                                            {" !", "!"},
                                                                                            {" ,", ","},
                                                                                            {" ' ", "'"},
                                                                                            {" n't", "n't"},
                                                                                            {" 'm", "'m"},
                                                                                            {" 's", "'s"},
                                                                                            {" 've", "'ve"},
                                                                                            {" 're", "'re"}}};
  std::string cur(text), next;
  for (const auto& [from, to] : kRules) {
    // Python's str.replace: every non-overlapping occurrence, left to right.
    next.clear();
    size_t pos = 0;
    for (size_t at; (at = cur.find(from, pos)) != std::string::npos; pos = at + from.size())
      next.append(cur, pos, at - pos).append(to);
    next.append(cur, pos, std::string::npos);
    cur.swap(next);
  }
  return cur;
}

}  // namespace lethe::text
