#include "text/wordpiece.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "text/utf8.h"

namespace lethe::text {
namespace fs = std::filesystem;
namespace {

// UTF-8 → code points (the input is validated first) and back.
std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3F);
    out.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return out;
}

void append(std::string& s, char32_t cp) {
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool in(char32_t c, char32_t lo, char32_t hi) {
  return c >= lo && c <= hi;
}

// Python's str.isspace-like set BERT uses: space, \t \n \r and the Zs category.
bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 ||
         in(c, 0x2000, 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python's str.split() also breaks at these (categories Zl, Zp), which BERT's cleaning keeps.
bool is_line_separator(char32_t c) {
  return c == 0x2028 || c == 0x2029;
}

// Categories C* (Cc, Cf, Co private use, and the unassigned code points of the blocks the accent and case
// tables cover), except \t \n \r (whitespace for BERT).
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (in(c, 0xE000, 0xF8FF) || in(c, 0xF0000, 0xFFFFD) || in(c, 0x100000, 0x10FFFD)) return true;  // Co
  if (in(c, 0x378, 0x379) || in(c, 0x380, 0x383) || c == 0x38B || c == 0x38D || c == 0x3A2 ||
      in(c, 0x2B81E, 0x2B81F))
    return true;  // Cn
  return c < 0x20 || in(c, 0x7F, 0x9F) || c == 0xAD || in(c, 0x600, 0x605) || c == 0x61C || c == 0x6DD ||
         c == 0x70F || c == 0x180E || in(c, 0x200B, 0x200F) || in(c, 0x202A, 0x202E) ||
         in(c, 0x2060, 0x2064) || in(c, 0x2066, 0x206F) || c == 0xFEFF || in(c, 0xFFF9, 0xFFFB) ||
         in(c, 0xE0001, 0xE007F);
}

// ASCII symbols count as punctuation (BERT's rule), plus Unicode P* in the blocks that occur in text.
bool is_punctuation(char32_t c) {
  if (in(c, 33, 47) || in(c, 58, 64) || in(c, 91, 96) || in(c, 123, 126)) return true;
  return c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB || c == 0xBF ||
         c == 0x37E || c == 0x387 || in(c, 0x55A, 0x55F) || c == 0x589 || c == 0x58A || c == 0x5BE ||
         in(c, 0x2010, 0x2027) || in(c, 0x2030, 0x2043) || in(c, 0x2045, 0x2051) || in(c, 0x2053, 0x205E) ||
         c == 0x207D || c == 0x207E || c == 0x208D || c == 0x208E || in(c, 0x2308, 0x230B) || c == 0x2329 ||
         c == 0x232A || in(c, 0x2768, 0x2775) || in(c, 0x27E6, 0x27EF) || in(c, 0x2983, 0x2998) ||
         in(c, 0x2E00, 0x2E4F) || in(c, 0x3001, 0x3003) || in(c, 0x3008, 0x3011) || in(c, 0x3014, 0x301F) ||
         c == 0x3030 || c == 0x303D || c == 0x30A0 || c == 0x30FB || in(c, 0xFE10, 0xFE19) ||
         in(c, 0xFE30, 0xFE52) || in(c, 0xFE54, 0xFE61) || c == 0xFE63 || c == 0xFE68 || c == 0xFE6A ||
         c == 0xFE6B || in(c, 0xFF01, 0xFF03) || in(c, 0xFF05, 0xFF0A) || in(c, 0xFF0C, 0xFF0F) ||
         c == 0xFF1A || c == 0xFF1B || c == 0xFF1F || c == 0xFF20 || in(c, 0xFF3B, 0xFF3D) || c == 0xFF3F ||
         c == 0xFF5B || c == 0xFF5D || in(c, 0xFF5F, 0xFF65);
}

bool is_cjk(char32_t c) {
  return in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF) || in(c, 0x20000, 0x2A6DF) ||
         in(c, 0x2A700, 0x2B73F) || in(c, 0x2B740, 0x2B81F) || in(c, 0x2B820, 0x2CEAF) ||
         in(c, 0xF900, 0xFAFF) || in(c, 0x2F800, 0x2FA1F);
}

// The NFC singletons HF's slow tokenizer normalises before anything else (Kelvin, Ångström, Ohm signs).
char32_t nfc(char32_t c) {
  return c == 0x212A ? U'K' : c == 0x212B ? 0xC5 : c == 0x2126 ? 0x3A9 : c;
}

// Lower case (Python's str.lower for the blocks covered), one code point.
char32_t lower(char32_t c) {
  if (in(c, 'A', 'Z')) return c + 32;
  if (in(c, 0xFF21, 0xFF3A)) return c + 32;  // fullwidth Ａ..Ｚ
  if (in(c, 0xC0, 0xDE) && c != 0xD7) return c + 32;
  if ((in(c, 0x100, 0x12F) || in(c, 0x132, 0x137) || in(c, 0x14A, 0x177)) && c % 2 == 0) return c + 1;
  if ((in(c, 0x139, 0x148) || in(c, 0x179, 0x17E)) && c % 2 == 1) return c + 1;
  if (c == 0x178) return 0xFF;
  if (in(c, 0x391, 0x3AB) && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (in(c, 0x388, 0x38A)) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (in(c, 0x410, 0x42F)) return c + 32;
  if (in(c, 0x400, 0x40F)) return c + 80;
  return c;
}

// The base letter of a precomposed accented letter (NFD's first code point), or 0 when c has no accent.
char32_t strip_accent(char32_t c) {
  // U+00C0..U+00FF, '.' = no decomposition.
  static constexpr char kLatin1[] = "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y";
  // U+0100..U+017F.
  static constexpr char kExtA[] =
      "AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl....NnNnNn...OoOoOo.."
      "RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZz.";
  if (in(c, 0xC0, 0xFF) && kLatin1[c - 0xC0] != '.') return static_cast<unsigned char>(kLatin1[c - 0xC0]);
  if (in(c, 0x100, 0x17F) && kExtA[c - 0x100] != '.') return static_cast<unsigned char>(kExtA[c - 0x100]);
  switch (c) {  // Greek with tonos / dialytika
    case 0x3AC:
      return 0x3B1;
    case 0x3AD:
      return 0x3B5;
    case 0x3AE:
      return 0x3B7;
    case 0x3AF:
    case 0x3CA:
    case 0x390:
      return 0x3B9;
    case 0x3CC:
      return 0x3BF;
    case 0x3CD:
    case 0x3CB:
    case 0x3B0:
      return 0x3C5;
    case 0x3CE:
      return 0x3C9;
    case 0x419:
      return 0x418;  // Й = И + breve
    case 0x439:
      return 0x438;
    case 0x401:
      return 0x415;  // Ё
    case 0x451:
      return 0x435;
    default:
      return 0;
  }
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab(std::vector<std::string> tokens, bool lower_case) {
  WordPieceTokenizer t;
  t.tokens_ = std::move(tokens);
  t.lower_ = lower_case;
  for (size_t i = 0; i < t.tokens_.size(); ++i) t.ids_.emplace(t.tokens_[i], static_cast<int32_t>(i));
  auto id = [&](const char* name) {
    const auto it = t.ids_.find(name);
    return it == t.ids_.end() ? -1 : it->second;
  };
  t.cls_ = id("[CLS]");
  t.sep_ = id("[SEP]");
  t.unk_ = id("[UNK]");
  t.pad_ = std::max(0, id("[PAD]"));
  LETHE_CHECK_INPUT(t.cls_ >= 0 && t.sep_ >= 0 && t.unk_ >= 0,
                    "the WordPiece vocabulary lacks [CLS], [SEP] or [UNK]; is this a BERT vocab.txt?");
  return t;
}

WordPieceTokenizer WordPieceTokenizer::from_dir(const fs::path& dir) {
  const fs::path vocab = dir / "vocab.txt";
  const std::string text = read_text_file(vocab, "a BERT vocab.txt (one WordPiece token per line)");
  LETHE_CHECK_INPUT(is_valid_utf8(text), "{}: not valid UTF-8", vocab.string());
  std::vector<std::string> tokens;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(line);
    pos = end + 1;
  }
  bool lower_case = true;
  const fs::path cfg = dir / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    const nlohmann::json j =
        nlohmann::json::parse(read_text_file(cfg, "tokenizer_config.json"), nullptr, false);
    LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: not a JSON object", cfg.string());
    if (j.contains("do_lower_case")) {
      LETHE_CHECK_INPUT(j["do_lower_case"].is_boolean(), "{}: do_lower_case must be true or false",
                        cfg.string());
      lower_case = j["do_lower_case"].get<bool>();
    }
  }
  try {
    return from_vocab(std::move(tokens), lower_case);
  } catch (const InputError& e) {
    throw_input("{}: {}", vocab.string(), e.what());
  }
}

std::vector<std::string> WordPieceTokenizer::basic(std::string_view text) const {
  LETHE_CHECK_INPUT(is_valid_utf8(text), "WordPiece: the text is not valid UTF-8 (byte {})",
                    utf8_valid_prefix(text));
  // Clean, space out CJK, split on whitespace.
  std::vector<std::vector<char32_t>> words(1);
  for (char32_t c : decode(text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    c = nfc(c);
    if (is_whitespace(c) || is_line_separator(c) || is_cjk(c)) {
      if (!words.back().empty()) words.emplace_back();
      if (is_cjk(c)) {
        words.back().push_back(c);
        words.emplace_back();
      }
      continue;
    }
    words.back().push_back(c);
  }
  std::vector<std::string> out;
  for (auto& w : words) {
    if (w.empty()) continue;
    std::vector<char32_t> chars;
    for (size_t k = 0; k < w.size(); ++k) {
      char32_t c = w[k];
      if (!lower_) {
        chars.push_back(c);
        continue;
      }
      // Python's final-sigma rule: Σ after a letter and not before one lowers to ς.
      auto letter = [](char32_t x) {
        return lower(x) != x || in(x, 'a', 'z') || in(x, 0x3AC, 0x3CE) || in(x, 0xDF, 0xFF);
      };
      if (c == 0x3A3 && k > 0 && letter(w[k - 1]) && (k + 1 == w.size() || !letter(w[k + 1]))) {
        chars.push_back(0x3C2);
        continue;
      }
      c = lower(c);
      if (in(c, 0x300, 0x36F)) continue;  // a combining mark (category Mn)
      const char32_t base = strip_accent(c);
      chars.push_back(base ? lower(base) : c);
    }
    // Punctuation becomes its own token.
    std::string cur;
    for (char32_t c : chars) {
      if (is_punctuation(c)) {
        if (!cur.empty()) out.push_back(std::move(cur));
        cur.clear();
        std::string p;
        append(p, c);
        out.push_back(std::move(p));
      } else {
        append(cur, c);
      }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  }
  return out;
}

void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<std::string>& out) const {
  const std::vector<char32_t> chars = decode(word);
  if (chars.size() > 100) {
    out.push_back(tokens_[static_cast<size_t>(unk_)]);
    return;
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    size_t end = chars.size();
    std::string found;
    while (start < end) {
      std::string sub = start > 0 ? "##" : "";
      for (size_t k = start; k < end; ++k) append(sub, chars[k]);
      if (ids_.count(sub)) {
        found = std::move(sub);
        break;
      }
      --end;
    }
    if (found.empty()) {
      out.push_back(tokens_[static_cast<size_t>(unk_)]);
      return;
    }
    pieces.push_back(std::move(found));
    start = end;
  }
  for (auto& p : pieces) out.push_back(std::move(p));
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  // Literal special tokens ("[SEP]", case-sensitive) are split out first and kept whole, as HF does.
  static const char* const kSpecial[] = {"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"};
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos;
    std::string_view which;
    for (const char* sp : kSpecial) {
      if (!ids_.count(sp)) continue;
      const size_t at = text.find(sp, pos);
      if (at < best) best = at, which = sp;
    }
    const std::string_view chunk =
        text.substr(pos, best == std::string_view::npos ? std::string_view::npos : best - pos);
    for (const std::string& w : basic(chunk)) wordpiece(w, out);
    if (best == std::string_view::npos) break;
    out.emplace_back(which);
    pos = best + which.size();
  }
  return out;
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, bool add_special,
                                                size_t max_length) const {
  std::vector<int32_t> ids;
  if (add_special) ids.push_back(cls_);
  for (const std::string& p : tokenize(text)) ids.push_back(ids_.at(p));
  const size_t keep = add_special ? 1 : 0;
  if (max_length > 0 && ids.size() + keep > max_length) ids.resize(max_length > keep ? max_length - keep : 0);
  if (add_special) ids.push_back(sep_);
  return ids;
}

}  // namespace lethe::text
