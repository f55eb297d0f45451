#include "text/regex.h"

#include <stdexcept>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "text/utf8.h"

namespace lethe::text {

Regex::Regex(std::string_view pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                        &err, &off, nullptr);
  if (code_ == nullptr) throw std::runtime_error("cannot compile regex " + std::string(pattern));
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() {
  pcre2_code_free(code_);
}

std::vector<std::string> Regex::find_all(std::string_view text) const {
  LETHE_CHECK_INPUT(is_valid_utf8(text), "regex: the text is not valid UTF-8 (byte {})",
                    utf8_valid_prefix(text));
  std::vector<std::string> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
  PCRE2_SIZE start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                               PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      throw std::runtime_error("regex match failed (PCRE2 error " + std::to_string(rc) + ")");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    out.emplace_back(text.substr(ov[0], ov[1] - ov[0]));
    if (ov[1] == ov[0]) {  // an empty match: step over one whole character
      start = ov[1] + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    } else {
      start = ov[1];
    }
  }
  pcre2_match_data_free(md);
  return out;
}

std::string Regex::replace_all(std::string_view text, std::string_view replacement) const {
  LETHE_CHECK_INPUT(is_valid_utf8(text), "regex: the text is not valid UTF-8 (byte {})",
                    utf8_valid_prefix(text));
  std::string out(text.size() * 2 + 64, '\0');
  for (;;) {
    PCRE2_SIZE len = out.size();
    const int rc =
        pcre2_substitute(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                         PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
                         nullptr, nullptr, reinterpret_cast<PCRE2_SPTR>(replacement.data()),
                         replacement.size(), reinterpret_cast<PCRE2_UCHAR*>(out.data()), &len);
    if (rc == PCRE2_ERROR_NOMEMORY) {
      out.resize(len + 1);
      continue;
    }
    if (rc < 0) throw std::runtime_error("regex substitution failed");
    out.resize(len);
    return out;
  }
}

}  // namespace lethe::text
