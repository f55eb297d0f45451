#include "text/word_tokenize.h"

#include <memory>
#include <stdexcept>

#include "core/error.h"
#include "text/regex.h"
#include "text/utf8.h"

namespace lethe::text {
namespace {

// One substitution rule: a pattern and its PCRE2 replacement ($1, $0 for Python's \1, \g<0>).
struct Rule {
  const char* pattern;
  const char* replacement;
};

// nltk/tokenize/destructive.py (3.10.4), NLTKWordTokenizer.tokenize, in order; convert_parentheses is off.
constexpr Rule kRules[] = {
    // STARTING_QUOTES
    {R"(([«“‘„]|[`]+))", " $1 "},
    {R"(^\")", "``"},
    {R"((``))", " $1 "},
    {R"(([ \(\[{<])(\"|\'{2}))", "$1 `` "},
    {R"((?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w))", "$1 "},
    // PUNCTUATION
    {R"(([^\.])(\.)([\]\)}>"\'»”’ ]*+)\s*$)", "$1 $2 $3 "},
    {R"(([:,])([^\d]))", " $1 $2"},
    {R"(([:,])$)", " $1 "},
    {R"(\.{2,})", " $0 "},
    {R"([;@#$%&])", " $0 "},
    {R"([\x{2012}-\x{2015}])", " $0 "},
    {R"(([^\.])(\.)([\]\)}>"\']*)\s*$)", "$1 $2$3 "},
    {R"([?!])", " $0 "},
    {R"(([^'])' )", "$1 ' "},
    {R"([*])", " $0 "},
    // PARENS_BRACKETS
    {R"([\]\[\(\)\{\}\<\>])", " $0 "},
    // DOUBLE_DASHES
    {R"(--)", " -- "},
};

// Applied after the text is wrapped in spaces.
constexpr Rule kEndRules[] = {
    // ENDING_QUOTES
    {R"(([»”’]))", " $1 "},
    {R"('')", " '' "},
    {R"(")", " '' "},
    {R"(\s+)", " "},
    {R"(([^' ])('[sS]|'[mM]|'[dD]|') )", "$1 $2 "},
    {R"(([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) )", "$1 $2 "},
    // CONTRACTIONS2
    {R"((?i)\b(can)(not)\b)", " $1 $2 "},
    {R"((?i)\b(d)('ye)\b)", " $1 $2 "},
    {R"((?i)\b(gim)(me)\b)", " $1 $2 "},
    {R"((?i)\b(gon)(na)\b)", " $1 $2 "},
    {R"((?i)\b(got)(ta)\b)", " $1 $2 "},
    {R"((?i)\b(lem)(me)\b)", " $1 $2 "},
    {R"((?i)\b(more)('n)\b)", " $1 $2 "},
    {R"((?i)\b(wan)(na)(?=\s))", " $1 $2 "},
    // CONTRACTIONS3
    {R"((?i) ('t)(is)\b)", " $1 $2 "},
    {R"((?i) ('t)(was)\b)", " $1 $2 "},
};

class Compiled {
 public:
  explicit Compiled(const Rule& r) : regex_(r.pattern), replacement_(r.replacement) {}
  std::string apply(const std::string& s) const { return regex_.replace_all(s, replacement_); }

 private:
  Regex regex_;
  const char* replacement_;
};

struct RuleSet {
  std::vector<std::unique_ptr<Compiled>> start, end;
  RuleSet() {
    for (const Rule& r : kRules) start.push_back(std::make_unique<Compiled>(r));
    for (const Rule& r : kEndRules) end.push_back(std::make_unique<Compiled>(r));
  }
};

const RuleSet& rules() {
  static const RuleSet set;
  return set;
}

}  // namespace

std::vector<std::string> word_tokenize(std::string_view text) {
  LETHE_CHECK_INPUT(is_valid_utf8(text), "word_tokenize: the text is not valid UTF-8 (byte {})",
                    utf8_valid_prefix(text));
  std::string s(text);
  for (const auto& r : rules().start) s = r->apply(s);
  s = " " + s + " ";
  for (const auto& r : rules().end) s = r->apply(s);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) ++i;
    size_t j = i;
    while (j < s.size() && !(s[j] == ' ' || (s[j] >= '\t' && s[j] <= '\r'))) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++i;
      continue;
    }
    // Two-byte sequences cover Latin-1 Supplement .. Cyrillic (U+0080..U+07FF).
    if ((c & 0xE0) == 0xC0 && i + 1 < text.size()) {
      uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7))
        cp += 0x20;  // À..Þ except ×
      else if (((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) ||
                (cp >= 0x14A && cp <= 0x177)) &&
               cp % 2 == 0)
        cp += 1;  // Latin Extended-A capital/small pairs
      else if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2)
        cp += 0x20;  // Greek capitals
      else if (cp >= 0x410 && cp <= 0x42F)
        cp += 0x20;  // Cyrillic А..Я
      else if (cp >= 0x400 && cp <= 0x40F)
        cp += 0x50;  // Cyrillic Ѐ..Џ
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      i += 2;
      continue;
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

}  // namespace lethe::text
