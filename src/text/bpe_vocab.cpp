#include "text/bpe_vocab.h"

#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"

namespace lethe::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using TokenIndex = std::unordered_map<std::string_view, int32_t>;

constexpr std::string_view kVocabExpected = "a JSON object mapping each token string to a dense integer id";
constexpr std::string_view kMergesExpected = "merge lines \"left right\" after an optional #version header";

json read_json(const fs::path& path, std::string_view expected) {
  const std::string text = read_text_file(path, expected);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw_input("{}: malformed JSON ({}); expected {}", path.string(), e.what(), expected);
  }
}

// Fills v.tokens from a {token: id} object and checks the ids are exactly 0..V-1.
void read_vocab_object(const json& obj, const std::string& where, BpeVocab& v) {
  if (!obj.is_object()) throw_input("{}: got a JSON {}, expected {}", where, obj.type_name(), kVocabExpected);
  const auto n = static_cast<int64_t>(obj.size());
  v.tokens.assign(obj.size(), std::string());
  std::vector<bool> seen(obj.size(), false);
  for (const auto& [token, value] : obj.items()) {
    if (!value.is_number_integer())
      throw_input("{}: token {:?} maps to {}, expected an integer id", where, token, value.dump());
    const auto id = value.get<int64_t>();
    if (id < 0 || id >= n)
      throw_input("{}: token {:?} has id {}, expected ids 0..{} (dense, one per token)", where, token, id,
                  n - 1);
    if (seen[id]) throw_input("{}: tokens {:?} and {:?} share id {}", where, v.tokens[id], token, id);
    seen[id] = true;
    v.tokens[id] = token;
  }
}

TokenIndex index_tokens(const BpeVocab& v) {
  TokenIndex index;
  index.reserve(v.tokens.size());
  for (size_t id = 0; id < v.tokens.size(); ++id) index.emplace(v.tokens[id], static_cast<int32_t>(id));
  return index;
}

class MergeBuilder {
 public:
  MergeBuilder(BpeVocab& v, const TokenIndex& index) : v_(v), index_(index) {}

  void add(std::string_view left, std::string_view right, const std::string& where) {
    const int32_t l = lookup(left, where, "merge part");
    const int32_t r = lookup(right, where, "merge part");
    const std::string merged = std::string(left) + std::string(right);
    const int32_t m = lookup(merged, where, "merge result");
    const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
    if (!seen_.insert(key).second)
      throw_input("{}: duplicate merge {:?} {:?}, expected each pair once", where, left, right);
    v_.merges.push_back({l, r, m});
  }

  // "left right" with exactly one space: the token alphabet maps the space byte to 'Ġ', so no token has one.
  void add_line(std::string_view line, const std::string& where) {
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos)
      throw_input("{}: got {:?}, expected a merge \"left right\" (two tokens, one space)", where, line);
    add(line.substr(0, sp), line.substr(sp + 1), where);
  }

 private:
  int32_t lookup(std::string_view token, const std::string& where, std::string_view what) const {
    const auto it = index_.find(token);
    if (it == index_.end()) throw_input("{}: {} {:?} is not in the vocabulary", where, what, token);
    return it->second;
  }

  BpeVocab& v_;
  const TokenIndex& index_;
  std::unordered_set<uint64_t> seen_;
};

// Byte-level BPE starts from one token per byte, so a missing byte token is a load error.
void find_byte_tokens(BpeVocab& v, const TokenIndex& index, const std::string& vocab_where) {
  const auto& alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    const auto it = index.find(alphabet[b]);
    if (it == index.end())
      throw_input("{}: byte token {:?} (byte 0x{:02X}) is missing, expected all 256 byte tokens", vocab_where,
                  alphabet[b], b);
    v.byte_ids[b] = it->second;
  }
}

// GPT-2's pair of files has no config beside it: <|endoftext|> is its end of text and its one added token.
void finish_gpt2(BpeVocab& v, const TokenIndex& index, const std::string& vocab_where) {
  find_byte_tokens(v, index, vocab_where);
  const auto eos = index.find(kEndOfText);
  if (eos == index.end()) throw_input("{}: expected the end-of-text token {:?}", vocab_where, kEndOfText);
  v.eos_id = eos->second;
  bool eos_added = false;
  for (const auto& a : v.added) eos_added = eos_added || a.content == kEndOfText;
  if (!eos_added) v.added.push_back({std::string(kEndOfText), v.eos_id, true});
}

void expect_absent_or(const json& obj, const char* key, const json& allowed, const std::string& where,
                      std::string_view why) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null() || *it == allowed) return;
  throw_input("{}: {} is {}, expected {} ({})", where, key, it->dump(), allowed.dump(), why);
}

void read_added_tokens(const json& root, const json& vocab, const std::string& where, BpeVocab& v) {
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return;
  if (!it->is_array())
    throw_input("{}: added_tokens is a JSON {}, expected an array", where, it->type_name());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string at = fmt::format("{}: added_tokens[{}]", where, i);
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string() || t["content"].get_ref<const std::string&>().empty())
      throw_input("{}: expected an object with integer \"id\" and non-empty string \"content\"", at);
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      expect_absent_or(t, flag, false, at, "only plain substring matching is implemented");
    for (const char* flag : {"special", "normalized"})
      if (t.contains(flag) && !t[flag].is_boolean())
        throw_input("{}.{}: got {}, expected true or false", at, flag, t[flag].dump());
    const auto id = t["id"].get<int64_t>();
    const auto content = t["content"].get<std::string>();
    const auto in_vocab = vocab.find(content);
    if (in_vocab != vocab.end() ? id != in_vocab->get<int64_t>()
                                : id != static_cast<int64_t>(v.tokens.size()))
      throw_input("{}: token {:?} has id {}, expected its model.vocab id or the next free id {}", at, content,
                  id,
                  in_vocab != vocab.end() ? in_vocab->get<int64_t>() : static_cast<int64_t>(v.tokens.size()));
    if (in_vocab == vocab.end()) v.tokens.push_back(content);
    const bool special = t.value("special", false);
    v.added.push_back({content, static_cast<int32_t>(id), special, t.value("normalized", !special)});
  }
}

}  // namespace

const std::array<std::string, 256>& byte_level_alphabet() {
  static const std::array<std::string, 256> alphabet = [] {
    // Printable Latin-1 bytes stand for themselves; the rest are shifted to U+0100.. in byte order.
    std::array<std::string, 256> a;
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : 256 + shifted++;
      a[b] = cp < 0x80
                 ? std::string(1, static_cast<char>(cp))
                 : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    return a;
  }();
  return alphabet;
}

std::string token_to_bytes(std::string_view token) {
  // Every alphabet code point is below U+0144, so it is one or two UTF-8 bytes; index them by code point.
  static const std::array<int16_t, 0x144> byte_of = [] {
    std::array<int16_t, 0x144> m;
    m.fill(-1);
    const auto& a = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) {
      const auto c0 = static_cast<unsigned char>(a[b][0]);
      const int cp =
          a[b].size() == 1 ? c0 : ((c0 & 0x1F) << 6) | (static_cast<unsigned char>(a[b][1]) & 0x3F);
      m[cp] = static_cast<int16_t>(b);
    }
    return m;
  }();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const auto c0 = static_cast<unsigned char>(token[i]);
    int cp = -1;
    if (c0 < 0x80) {
      cp = c0, i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = ((c0 & 0x1F) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3F), i += 2;
    }
    if (cp < 0 || cp >= static_cast<int>(byte_of.size()) || byte_of[cp] < 0) return std::string(token);
    out.push_back(static_cast<char>(byte_of[cp]));
  }
  return out;
}

BpeVocab load_vocab_and_merges(const fs::path& vocab_json, const fs::path& merges_txt) {
  BpeVocab v;
  read_vocab_object(read_json(vocab_json, kVocabExpected), vocab_json.string(), v);
  v.model_size = static_cast<int64_t>(v.tokens.size());
  const TokenIndex index = index_tokens(v);
  const std::string text = read_text_file(merges_txt, kMergesExpected);
  MergeBuilder merges(v, index);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("#version")) continue;  // HF skips these wherever they are
    merges.add_line(line, fmt::format("{}:{}", merges_txt.string(), line_no));
  }
  finish_gpt2(v, index, vocab_json.string());
  return v;
}

BpeVocab read_bpe_tables(const json& root, const std::string& where, bool byte_level) {
  const json& model = root["model"];
  BpeVocab v;
  if (!model.contains("vocab")) throw_input("{}: model.vocab is missing, expected {}", where, kVocabExpected);
  read_vocab_object(model["vocab"], where + ": model.vocab", v);
  v.model_size = static_cast<int64_t>(v.tokens.size());
  read_added_tokens(root, model["vocab"], where, v);
  const TokenIndex index = index_tokens(v);

  const json merges_json = model.value("merges", json());
  if (!merges_json.is_array()) throw_input("{}: model.merges is missing or not an array", where);
  MergeBuilder merges(v, index);
  for (size_t i = 0; i < merges_json.size(); ++i) {
    const json& m = merges_json[i];
    const std::string at = fmt::format("{}: model.merges[{}]", where, i);
    if (m.is_string()) {
      merges.add_line(m.get_ref<const std::string&>(), at);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.add(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>(), at);
    } else {
      throw_input("{}: got {}, expected \"left right\" or [\"left\", \"right\"]", at, m.dump());
    }
  }
  if (byte_level) find_byte_tokens(v, index, where + ": model.vocab");
  return v;
}

json read_json_file(const fs::path& path, std::string_view expected) {
  return read_json(path, expected);
}

}  // namespace lethe::text
