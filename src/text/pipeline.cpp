#include "text/pipeline.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "text/bpe_vocab.h"
#include "text/utf8.h"

namespace lethe::text {
namespace {

// GPT-2's pre-tokenisation pattern, verbatim (OpenAI encoder.py; HF ByteLevel with use_regex=true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buf{};
  pcre2_get_error_message(code, buf.data(), buf.size());
  return reinterpret_cast<const char*>(buf.data());
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  for (std::size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(s, pos, hit - pos).append(to);
  out.append(s, pos);
  s = std::move(out);
}

using Span = PreTokenizer::Span;

// HF's SplitDelimiterBehavior applied to the matches and gaps of one piece, in order.
void apply_behavior(SplitBehavior b, std::vector<Span>& spans) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (b) {
    case SplitBehavior::kIsolated:
      return;
    case SplitBehavior::kRemoved:
      std::erase_if(spans, [](const Span& s) { return s.match; });
      return;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  spans = std::move(out);
}

}  // namespace

// A Split, ByteLevel or Metaspace step ready to run: regex steps hold their compiled pattern.
struct PreTokenizer::Step {
  PreTokenizerStep spec;
  pcre2_code* code = nullptr;
  bool jit = false;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  std::string literal;  // split on this string when there is no regex
};

PreTokenizer::Scratch::~Scratch() {
  for (pcre2_match_data* m : md) pcre2_match_data_free(m);
}

PreTokenizer::PreTokenizer(const std::vector<PreTokenizerStep>& steps, const std::string& where) try {
  steps_.reserve(steps.size());
  for (const PreTokenizerStep& s : steps) {
    Step& st = steps_.emplace_back();
    st.spec = s;
    std::string_view pattern;
    if (const auto* split = std::get_if<SplitStep>(&s)) {
      st.behavior = split->behavior;
      if (split->is_regex)
        pattern = split->pattern;
      else
        st.literal = split->pattern;
    } else if (const auto* bl = std::get_if<ByteLevelStep>(&s); bl && bl->use_regex) {
      pattern = kGpt2Pattern;
    } else if (const auto* ms = std::get_if<MetaspaceStep>(&s); ms && ms->split) {
      st.behavior = SplitBehavior::kMergedWithNext;
      st.literal = ms->replacement;
    }
    if (pattern.empty()) continue;
    for (std::size_t i = 0; i + 1 < pattern.size(); ++i) {
      if (pattern[i] != '\\') continue;
      if (pattern[i + 1] == 'h' || pattern[i + 1] == 'H')
        throw_input(
            "{}: pre-tokenizer regex {:?} uses \\{}, a hex digit in HF's Oniguruma but horizontal space in "
            "PCRE2; spell the class out",
            where, pattern, pattern[i + 1]);
      ++i;  // skip the escaped character
    }
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    // UTF + UCP: \s, \w and \p{..} are Unicode-aware, as in Oniguruma, HF's engine.
    st.code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                            PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
    if (st.code == nullptr)
      throw_input("{}: pre-tokenizer regex {:?} does not compile at offset {}: {}", where, pattern,
                  err_offset, pcre2_message(err));
    // JIT is several times faster than the interpreter; without it (some platforms) matching still works.
    st.jit = pcre2_jit_compile(st.code, PCRE2_JIT_COMPLETE) == 0;
  }
} catch (...) {
  for (Step& s : steps_) pcre2_code_free(s.code);  // the destructor does not run for a throwing constructor
  throw;
}

PreTokenizer::~PreTokenizer() {
  for (Step& s : steps_) pcre2_code_free(s.code);
}

std::unique_ptr<PreTokenizer::Scratch> PreTokenizer::scratch() const {
  auto s = std::make_unique<Scratch>();
  for (const Step& st : steps_) {
    pcre2_match_data* md = nullptr;
    if (st.code != nullptr && (md = pcre2_match_data_create_from_pattern(st.code, nullptr)) == nullptr)
      throw std::bad_alloc();
    s->md.push_back(md);
  }
  return s;
}

namespace {

// Matches and gaps of `text`, left to right. text must be valid UTF-8: PCRE2 is told to skip its own check,
// which would otherwise rescan the rest of the text on every call. An empty match is refused: HF splits at it
// (Oniguruma's find_iter semantics), which lethe does not implement, and no known tokenizer's pattern can
// match the empty string.
void find_spans(pcre2_code* code, bool jit, pcre2_match_data* md, const std::string& literal,
                std::string_view text, std::vector<Span>& spans) {
  spans.clear();
  const auto n = static_cast<uint32_t>(text.size());
  uint32_t off = 0;
  while (off < n) {
    std::size_t b = 0, e = 0;
    if (code == nullptr) {
      b = text.find(literal, off);
      if (b == std::string_view::npos) break;
      e = b + literal.size();
    } else {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
      int rc = PCRE2_ERROR_JIT_STACKLIMIT;
      if (jit) rc = pcre2_jit_match(code, subject, n, off, 0, md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking frames on the heap
        rc = pcre2_match(code, subject, n, off, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw std::runtime_error("pre-tokenizer regex match failed: " + pcre2_message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      b = ov[0], e = ov[1];
      if (e == b)
        throw_input(
            "a pre-tokenizer Split regex matched the empty string at byte {} of a {}-byte piece; HF splits "
            "there and lethe does not implement that: use a pattern that cannot match nothing",
            b, n);
    }
    if (b > off) spans.push_back({off, static_cast<uint32_t>(b), false});
    spans.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e), true});
    off = static_cast<uint32_t>(e);
  }
  if (off < n) spans.push_back({off, n, false});
}

}  // namespace

void PreTokenizer::split(std::string_view text, bool at_origin, Scratch& scratch, Pieces& out) const {
  out.clear();
  out.buf.assign(text);
  if (!text.empty()) out.spans.push_back({0, static_cast<uint32_t>(text.size())});
  for (std::size_t k = 0; k < steps_.size(); ++k) {
    const Step& st = steps_[k];
    Pieces& in = scratch.tmp;
    std::swap(in, out);
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
      std::string_view piece = in[i];
      const auto start = static_cast<uint32_t>(out.buf.size());
      // Per-piece rewrites first, into out.buf; splitting then happens on the rewritten piece.
      if (const auto* bl = std::get_if<ByteLevelStep>(&st.spec);
          bl && bl->add_prefix_space && piece[0] != ' ') {
        out.buf += ' ';
        out.buf += piece;
      } else if (const auto* ms = std::get_if<MetaspaceStep>(&st.spec)) {
        std::string s(piece);
        replace_all(s, " ", ms->replacement);
        const bool first = at_origin && i == 0 && in.spans[0].first == 0;
        const bool prepend =
            ms->prepend == PrependScheme::kAlways || (ms->prepend == PrependScheme::kFirst && first);
        if (prepend && !s.starts_with(ms->replacement)) out.buf += ms->replacement;
        out.buf += s;
      } else {
        out.buf += piece;
      }
      const std::string_view rewritten = std::string_view(out.buf).substr(start);
      if (st.code == nullptr && st.literal.empty()) {
        out.spans.push_back({start, static_cast<uint32_t>(out.buf.size())});
        continue;
      }
      find_spans(st.code, st.jit, scratch.md[k], st.literal, rewritten, scratch.spans);
      apply_behavior(st.behavior, scratch.spans);
      for (const Span& s : scratch.spans) out.spans.push_back({start + s.begin, start + s.end});
    }
  }
}

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text) {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    if (const auto* p = std::get_if<PrependStep>(&step)) {
      if (!s.empty()) s.insert(0, p->prefix);
    } else {
      const auto& r = std::get<ReplaceStep>(step);
      replace_all(s, r.pattern, r.content);
    }
  }
  return s;
}

namespace {

// Runs of <0xAB> tokens become the text of their bytes, or one U+FFFD per byte when that is not valid UTF-8.
std::vector<std::string> byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  std::string run;
  std::size_t run_len = 0;
  const auto flush = [&] {
    if (run_len == 0) return;
    if (is_valid_utf8(run)) {
      out.push_back(run);
    } else {
      for (std::size_t i = 0; i < run_len; ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    run.clear(), run_len = 0;
  };
  const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (std::string& t : tokens) {
    if (t.size() == 6 && t.starts_with("<0x") && t[5] == '>' && hex(t[3]) && hex(t[4])) {
      run.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
      ++run_len;
      continue;
    }
    flush();
    out.push_back(std::move(t));
  }
  flush();
  return out;
}

// Drops up to `start` leading and `stop` trailing copies of the character c (whole characters, as HF).
std::string strip(const std::string& t, const std::string& c, std::size_t start, std::size_t stop) {
  std::size_t b = 0, e = t.size();
  for (std::size_t i = 0; i < start && t.compare(b, c.size(), c) == 0 && b < e; ++i) b += c.size();
  for (std::size_t i = 0; i < stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++i)
    e -= c.size();
  return t.substr(b, e - b);
}

}  // namespace

std::string decode_tokens(const std::optional<std::vector<DecoderStep>>& steps,
                          std::vector<std::string> tokens) {
  if (!steps) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const DecoderStep& step : *steps) {
    if (std::holds_alternative<ByteLevelDecode>(step)) {
      std::string bytes;
      for (const std::string& t : tokens) bytes += token_to_bytes(t);
      tokens.assign(1, is_valid_utf8(bytes) ? bytes : to_valid_utf8(bytes));
    } else if (const auto* r = std::get_if<ReplaceDecode>(&step)) {
      for (std::string& t : tokens) replace_all(t, r->pattern, r->content);
    } else if (std::holds_alternative<ByteFallbackDecode>(step)) {
      tokens = byte_fallback(std::move(tokens));
    } else if (std::holds_alternative<FuseDecode>(step)) {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens.assign(1, std::move(all));
    } else if (const auto* s = std::get_if<StripDecode>(&step)) {
      for (std::string& t : tokens) t = strip(t, s->content, s->start, s->stop);
    } else {
      const auto& m = std::get<MetaspaceDecode>(step);
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        // HF drops every replacement character of the first token, not only a leading one.
        replace_all(tokens[i], m.replacement, i == 0 && m.prepend != PrependScheme::kNever ? "" : " ");
      }
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace lethe::text
