#include "text/wordpiece.h"

#include <fstream>
#include <utility>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>
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

// Whitespace for BERT: space, \t \n \r and category Zs.
bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
         u_charType(static_cast<UChar32>(c)) == U_SPACE_SEPARATOR;
}

// Python's str.split() also breaks at these (categories Zl, Zp), which BERT's cleaning keeps.
bool is_line_separator(char32_t c) {
  return c == 0x2028 || c == 0x2029;
}

// Categories Cc, Cf, Co (`tokenizers`' is_control) and, for the Python tokenizer, Cn; never \t \n \r.
bool is_control(char32_t c, bool fast) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_PRIVATE_USE_CHAR || t == U_SURROGATE ||
         (!fast && t == U_UNASSIGNED);
}

// ASCII symbols count as punctuation (BERT's rule), plus every Unicode P* category.
bool is_punctuation(char32_t c) {
  if (in(c, 33, 47) || in(c, 58, 64) || in(c, 91, 96) || in(c, 123, 126)) return true;
  return u_ispunct(static_cast<UChar32>(c));
}

bool is_cjk(char32_t c, bool fast) {
  return in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF) || in(c, 0x20000, 0x2A6DF) ||
         in(c, 0x2A700, 0x2B73F) || in(c, 0x2B740, 0x2B81F) || in(c, fast ? 0x2B920 : 0x2B820, 0x2CEAF) ||
         in(c, 0xF900, 0xFAFF) || in(c, 0x2F800, 0x2FA1F);
}

// The NFC singletons HF's slow tokenizer normalises before anything else (Kelvin, Ångström, Ohm signs).
char32_t nfc(char32_t c) {
  return c == 0x212A ? U'K' : c == 0x212B ? 0xC5 : c == 0x2126 ? 0x3A9 : c;
}

// BertNormalizer's strip_accents + lowercase on one word: NFD (ICU), drop the non-spacing marks (Mn), then
// lower-case each code point (Unicode simple case mapping; after NFD the one multi-character mapping, U+0130,
// is already I + a dropped mark). Python's final-sigma rule (Σ after a letter and not before one becomes ς)
// only for the Python tokenizer: `tokenizers` lower-cases one character at a time.
std::vector<char32_t> fold(const std::vector<char32_t>& word, bool final_sigma) {
  std::u16string in16;
  for (char32_t c : word) {
    if (c >= 0x10000) {
      in16.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
      in16.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
    } else {
      in16.push_back(static_cast<char16_t>(c));
    }
  }
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* nfd = unorm2_getNFDInstance(&st);
  std::u16string out16(in16.size() * 4 + 8, u'\0');  // NFD expands a code point to at most 4 (Hangul: 3)
  const int32_t len = U_SUCCESS(st) ? unorm2_normalize(nfd, in16.data(), static_cast<int32_t>(in16.size()),
                                                       out16.data(), static_cast<int32_t>(out16.size()), &st)
                                    : 0;
  LETHE_CHECK_INPUT(U_SUCCESS(st), "WordPiece: Unicode normalisation failed ({})", u_errorName(st));
  std::vector<char32_t> base;
  for (int32_t i = 0; i < len;) {
    UChar32 c;
    U16_NEXT(out16.data(), i, len, c);
    if (u_charType(c) != U_NON_SPACING_MARK) base.push_back(static_cast<char32_t>(c));
  }
  std::vector<char32_t> out;
  for (size_t k = 0; k < base.size(); ++k) {
    const char32_t c = base[k];
    auto letter = [](char32_t x) { return u_isalpha(static_cast<UChar32>(x)) != 0; };
    if (final_sigma && c == 0x3A3 && k > 0 && letter(base[k - 1]) &&
        (k + 1 == base.size() || !letter(base[k + 1]))) {
      out.push_back(0x3C2);
      continue;
    }
    out.push_back(static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))));
  }
  return out;
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab(std::vector<std::string> tokens, bool lower_case,
                                                  bool fast) {
  WordPieceTokenizer t;
  t.tokens_ = std::move(tokens);
  t.lower_ = lower_case;
  t.fast_ = fast;
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

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const fs::path& file) {
  const std::string where = file.string();
  const nlohmann::json j =
      nlohmann::json::parse(read_text_file(file, "a tokenizers JSON (tokenizer.json)"), nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded() && j.is_object(), "{}: not a JSON object", where);
  auto object = [&](const nlohmann::json& parent, const char* key) -> const nlohmann::json& {
    LETHE_CHECK_INPUT(parent.contains(key) && parent[key].is_object(), "{}: '{}' must be an object", where,
                      key);
    return parent[key];
  };
  auto type_of = [&](const nlohmann::json& o, const char* what) {
    LETHE_CHECK_INPUT(o.contains("type") && o["type"].is_string(), "{}: {} has no 'type'", where, what);
    return o["type"].get<std::string>();
  };
  const nlohmann::json& model = object(j, "model");
  LETHE_CHECK_INPUT(type_of(model, "model") == "WordPiece",
                    "{}: model.type is '{}', expected WordPiece (a BERT tokenizer)", where,
                    type_of(model, "model"));
  const nlohmann::json& vocab = object(model, "vocab");
  std::vector<std::string> tokens(vocab.size());
  std::vector<bool> seen(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    LETHE_CHECK_INPUT(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                          id.get<int64_t>() < static_cast<int64_t>(tokens.size()) && !seen[id.get<size_t>()],
                      "{}: model.vocab['{}'] = {}: ids must be 0..{} each used once", where, token,
                      describe_json(id), tokens.size() - 1);
    LETHE_CHECK_INPUT(is_valid_utf8(token), "{}: model.vocab has a token that is not valid UTF-8", where);
    seen[id.get<size_t>()] = true;
    tokens[id.get<size_t>()] = token;
  }
  auto string_or = [&](const nlohmann::json& o, const char* key, const std::string& fallback) {
    if (!o.contains(key) || o[key].is_null()) return fallback;
    LETHE_CHECK_INPUT(o[key].is_string(), "{}: '{}' must be a string", where, key);
    return o[key].get<std::string>();
  };
  LETHE_CHECK_INPUT(string_or(model, "continuing_subword_prefix", "##") == "##",
                    "{}: model.continuing_subword_prefix must be \"##\"", where);
  LETHE_CHECK_INPUT(!model.contains("max_input_chars_per_word") || model["max_input_chars_per_word"] == 100,
                    "{}: model.max_input_chars_per_word must be 100 (BERT's)", where);

  const nlohmann::json& norm = object(j, "normalizer");
  LETHE_CHECK_INPUT(type_of(norm, "normalizer") == "BertNormalizer",
                    "{}: normalizer.type is '{}', expected BertNormalizer", where,
                    type_of(norm, "normalizer"));
  auto flag = [&](const char* key, bool fallback) {
    if (!norm.contains(key) || norm[key].is_null()) return fallback;
    LETHE_CHECK_INPUT(norm[key].is_boolean(), "{}: normalizer.{} must be true, false or null", where, key);
    return norm[key].get<bool>();
  };
  const bool lower = flag("lowercase", true);
  LETHE_CHECK_INPUT(flag("clean_text", true) && flag("handle_chinese_chars", true),
                    "{}: normalizer.clean_text and handle_chinese_chars must be true (BERT's defaults)",
                    where);
  LETHE_CHECK_INPUT(flag("strip_accents", lower) == lower,
                    "{}: normalizer.strip_accents differs from lowercase; only the BERT default (accents "
                    "stripped exactly when lower-casing) is supported",
                    where);
  const nlohmann::json& pre = object(j, "pre_tokenizer");
  LETHE_CHECK_INPUT(type_of(pre, "pre_tokenizer") == "BertPreTokenizer",
                    "{}: pre_tokenizer.type is '{}', expected BertPreTokenizer", where,
                    type_of(pre, "pre_tokenizer"));

  // [CLS] / [SEP] as the post-processor names them: BertProcessing {cls: [tok, id], sep: [tok, id]} or a
  // TemplateProcessing "single" of SpecialToken, Sequence, SpecialToken.
  const nlohmann::json& post = object(j, "post_processor");
  std::string cls, sep;
  if (type_of(post, "post_processor") == "BertProcessing") {
    for (auto [key, out] : {std::pair{"cls", &cls}, std::pair{"sep", &sep}}) {
      LETHE_CHECK_INPUT(
          post.contains(key) && post[key].is_array() && !post[key].empty() && post[key][0].is_string(),
          "{}: post_processor.{} must be [token, id]", where, key);
      *out = post[key][0].get<std::string>();
    }
  } else {
    LETHE_CHECK_INPUT(type_of(post, "post_processor") == "TemplateProcessing",
                      "{}: post_processor.type is '{}', "
                      "expected BertProcessing or TemplateProcessing",
                      where, type_of(post, "post_processor"));
    const nlohmann::json& single = post.contains("single") ? post["single"] : nlohmann::json();
    auto special = [&](size_t i) {
      const bool ok = single.is_array() && single.size() == 3 && single[i].contains("SpecialToken") &&
                      single[i]["SpecialToken"].contains("id") && single[i]["SpecialToken"]["id"].is_string();
      LETHE_CHECK_INPUT(ok && single[1].contains("Sequence"),
                        "{}: post_processor.single must be [SpecialToken, Sequence, SpecialToken] (BERT's "
                        "[CLS] A [SEP])",
                        where);
      return single[i]["SpecialToken"]["id"].get<std::string>();
    };
    cls = special(0);
    sep = special(2);
  }
  const std::string unk = string_or(model, "unk_token", "[UNK]");
  LETHE_CHECK_INPUT(cls == "[CLS]" && sep == "[SEP]" && unk == "[UNK]",
                    "{}: special tokens {} / {} / {}: expected BERT's [CLS] / [SEP] / [UNK]", where, cls, sep,
                    unk);
  try {
    return from_vocab(std::move(tokens), lower, /*fast=*/true);
  } catch (const InputError& e) {
    throw_input("{}: {}", where, e.what());
  }
}

WordPieceTokenizer WordPieceTokenizer::from_dir(const fs::path& dir) {
  if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json(dir / "tokenizer.json");
  const fs::path vocab = dir / "vocab.txt";
  const std::string text =
      read_text_file(vocab, "a BERT tokenizer: tokenizer.json, or vocab.txt (one WordPiece token per line)");
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
    if (c == 0 || c == 0xFFFD || is_control(c, fast_)) continue;
    c = nfc(c);
    if (is_whitespace(c) || is_line_separator(c) || is_cjk(c, fast_)) {
      if (!words.back().empty()) words.emplace_back();
      if (is_cjk(c, fast_)) {
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
    const std::vector<char32_t> chars = lower_ ? fold(w, !fast_) : w;
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
