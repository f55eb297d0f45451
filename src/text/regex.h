// A compiled PCRE2 pattern (UTF + UCP: Unicode \w \b \s, as Python's re on str) for the few places that must
// reproduce a Python regex exactly: MathQA's option parsing and SQuAD's answer normalisation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace lethe::text {

class Regex {
 public:
  explicit Regex(std::string_view pattern);  // std::runtime_error if the pattern does not compile
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, left to right (Python's re.findall without groups).
  std::vector<std::string> find_all(std::string_view text) const;
  // Every match replaced by `replacement` ($1 for groups), as re.sub.
  std::string replace_all(std::string_view text, std::string_view replacement) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

}  // namespace lethe::text
