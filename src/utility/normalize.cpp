#include "utility/normalize.h"

#include <algorithm>
#include <map>

#include "text/regex.h"
#include "text/word_tokenize.h"

namespace lethe::utility {
namespace {

// Python's str.replace(from, to): every non-overlapping occurrence, left to right.
std::string replace(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string_view::npos; i = j + from.size()) {
    out.append(s.substr(i, j - i));
    out.append(to);
  }
  out.append(s.substr(i));
  return out;
}

// Byte length of the whitespace character at s[i] (Python's str.isspace), 0 if none.
size_t space_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = b(i);
  if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
  if (c == 0xC2 && (b(i + 1) == 0x85 || b(i + 1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (c == 0xE1 && b(i + 1) == 0x9A && b(i + 2) == 0x80) return 3;    // U+1680
  if (c == 0xE2 && b(i + 1) == 0x80 &&
      (b(i + 2) <= 0x8A || b(i + 2) == 0xA8 || b(i + 2) == 0xA9 || b(i + 2) == 0xAF))
    return 3;                                                       // U+2000-200A, 2028/9, 202F
  if (c == 0xE2 && b(i + 1) == 0x81 && b(i + 2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && b(i + 1) == 0x80 && b(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

// s[0].upper() + s[1:] for ASCII and Latin-1 lower-case letters; other first characters stay as they are.
std::string uppercase_first(std::string s) {
  if (s.empty()) return s;
  const auto c = static_cast<unsigned char>(s[0]);
  if (c >= 'a' && c <= 'z') {
    s[0] = static_cast<char>(c - 32);
  } else if (c == 0xC3 && s.size() > 1) {
    const auto d = static_cast<unsigned char>(s[1]);
    if (d >= 0xA0 && d <= 0xBE && d != 0xB7) s[1] = static_cast<char>(d - 0x20);  // à..þ → À..Þ, not ÷
  }
  return s;
}

}  // namespace

std::vector<std::string> split_whitespace(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size()) {
      const size_t w = space_at(text, i);
      if (w == 0) break;
      i += w;
    }
    size_t j = i;
    while (j < text.size() && space_at(text, j) == 0) ++j;
    if (j > i) out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string rstrip_whitespace(std::string_view text) {
  size_t e = text.size();
  for (;;) {  // step back over whole characters that are spaces
    size_t k = e;
    while (k > 0 && (static_cast<unsigned char>(text[k - 1]) & 0xC0) == 0x80) --k;
    if (k == 0) break;
    --k;
    if (space_at(text.substr(0, e), k) != e - k) break;
    e = k;
  }
  return std::string(text.substr(0, e));
}

std::string strip_whitespace(std::string_view text) {
  size_t b = 0;
  while (b < text.size()) {
    const size_t w = space_at(text, b);
    if (w == 0) break;
    b += w;
  }
  return rstrip_whitespace(text.substr(b));
}

std::string normalize_reply(std::string_view text) {
  static const std::vector<std::pair<std::string, std::string>> kSwitch = {
      {" .", "."}, {" ,", ","}, {" ?", "?"}, {" !", "!"}, {" ' ", "'"}};
  std::string t = text::lower(text);
  for (const auto& [spaced, bare] : kSwitch) t = replace(replace(t, bare, spaced), "  ", " ");
  std::vector<std::string> tokens;
  for (size_t i = 0;;) {  // str.split(' '): every single space separates, empty tokens kept
    const size_t j = t.find(' ', i);
    tokens.push_back(t.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  static const std::vector<std::string> kI = {"i", "i'm", "i've", "i'll", "i'd"};
  const std::string_view ends = "?.!";
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i == 0)
      tokens[i] = uppercase_first(tokens[i]);
    else if (std::find(kI.begin(), kI.end(), tokens[i]) != kI.end())
      tokens[i] = uppercase_first(tokens[i]);
    else if (ends.find(tokens[i]) != std::string_view::npos &&
             i + 1 < tokens.size())  // `in '?.!'`: substring
      tokens[i + 1] = uppercase_first(tokens[i + 1]);
  }
  std::string joined;
  for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
  t = " " + joined + " ";
  for (const auto& [spaced, bare] : kSwitch) t = replace(t, spaced, bare);
  t = replace(strip_whitespace(t), "  ", " ");
  if (!t.empty() && std::string_view("!.?)\"'").find(t.back()) == std::string_view::npos) t += '.';
  return t;
}

std::string normalize_answer(std::string_view text) {
  static const text::Regex kArticles(R"(\b(a|an|the)\b)");
  const std::string_view punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  std::string t = text::lower(text);
  std::erase_if(t, [&](char c) { return punct.find(c) != std::string_view::npos; });
  t = kArticles.replace_all(t, " ");
  std::string joined;
  for (const std::string& w : split_whitespace(t)) joined += (joined.empty() ? "" : " ") + w;
  return replace(replace(joined, "<extra_id_0>", ""), "<extra_id_1>", "");
}

double squad_f1(std::string_view prediction, std::string_view truth) {
  const std::vector<std::string> p = split_whitespace(normalize_answer(prediction)),
                                 g = split_whitespace(normalize_answer(truth));
  std::map<std::string, int64_t> count;
  for (const auto& w : g) ++count[w];
  int64_t same = 0;
  for (const auto& w : p)
    if (auto it = count.find(w); it != count.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(p.size()),
               recall = static_cast<double>(same) / static_cast<double>(g.size());
  return 2 * precision * recall / (precision + recall);
}

std::pair<std::string, std::string> dialogue_prompt(const std::vector<std::string>& turns) {
  std::string prompt;
  const size_t history = turns.size() - 1;
  for (size_t i = 0; i < history; ++i)
    prompt += (i % 2 == 0 ? "User 1: " : "User 2: ") + normalize_reply(turns[i]) + "\n";
  prompt += (history - 1) % 2 ? "User 1:" : "User 2:";
  return {prompt, normalize_reply(turns.back())};
}

std::pair<std::string, std::string> lambada_split(std::string_view text) {
  const size_t cut = text.rfind(' ');
  const size_t word = cut == std::string_view::npos ? 0 : cut + 1;
  std::string target(1, ' ');
  target.append(text.substr(word));
  return {std::string(text.substr(0, word == 0 ? 0 : cut)), target};
}

}  // namespace lethe::utility
