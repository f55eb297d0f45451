#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/bpe_merge.h"
#include "text/bpe_vocab.h"
#include "text/pipeline.h"
#include "text/tokenizer_spec.h"
#include "text/utf8.h"

namespace lethe::text {
namespace {

namespace fs = std::filesystem;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Piece -> ids. Text repeats the same words over and over, so most pieces skip BPE entirely. Sharded locks
// keep concurrent encode() calls from contending; when full it stops growing (as HF's cache does).
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;  // longer pieces are rare and would only bloat the cache

  bool append_cached(std::string_view word, std::vector<int32_t>& out) {
    Shard& s = shard(word);
    std::lock_guard lock(s.mu);
    const auto it = s.map.find(word);
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void put(std::string_view word, std::span<const int32_t> ids) {
    Shard& s = shard(word);
    std::lock_guard lock(s.mu);
    if (s.map.size() < kShardCapacity) s.map.emplace(word, std::vector<int32_t>(ids.begin(), ids.end()));
  }

 private:
  static constexpr size_t kShards = 16, kShardCapacity = 1 << 12;  // 64k words, ~8 MB
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  // A cheap mix of length and two bytes (words are not empty): hashing twice would cost more than the
  // uneven spread, which only matters for lock contention.
  Shard& shard(std::string_view w) {
    const auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(w[i])); };
    return shards_[(w.size() * 3 + b(w.size() > 1 ? 1 : 0) + b(w.size() - 1) * 7) % kShards];
  }

  std::array<Shard, kShards> shards_;
};

// Added tokens found by a scan over the text: candidates are bucketed by first byte and tried longest first,
// so the earliest match wins and, among those, the longest (HF's leftmost-longest Aho-Corasick).
class AddedMatcher {
 public:
  void add(const AddedToken& t) {
    auto& bucket = by_first_[static_cast<unsigned char>(t.content[0])];
    bucket.push_back(&t);
    std::stable_sort(bucket.begin(), bucket.end(), [](const AddedToken* a, const AddedToken* b) {
      return a->content.size() > b->content.size();
    });
    empty_ = false;
  }

  // gap(text, offset) for each stretch without added tokens (possibly none), token(id) for each added token,
  // in order. allow_special = false leaves special tokens as text.
  template <typename Gap, typename Token>
  void split(std::string_view text, bool allow_special, Gap&& gap, Token&& token) const {
    size_t from = 0;
    for (size_t p = 0; !empty_ && p < text.size(); ++p) {
      for (const AddedToken* t : by_first_[static_cast<unsigned char>(text[p])]) {
        if (text.compare(p, t->content.size(), t->content) != 0) continue;
        const size_t end = p + t->content.size();
        // A special token left as text is still matched first (HF's encode_special_tokens), so no shorter
        // token inside it is found either.
        if (allow_special || !t->special) {
          if (p > from) gap(text.substr(from, p - from), from);
          token(t->id);
          from = end;
        }
        p = end - 1;
        break;
      }
    }
    if (from < text.size()) gap(text.substr(from), from);
  }

 private:
  std::array<std::vector<const AddedToken*>, 256> by_first_{};
  bool empty_ = true;
};

std::string fallback_token(int b) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

}  // namespace

struct Tokenizer::Impl {
  Impl(TokenizerSpec s, const std::string& where)
      : spec(std::move(s)), merger(spec.vocab.merges, spec.vocab.byte_ids), pre(spec.pre_tokenizer, where) {
    const std::vector<std::string>& tokens = spec.vocab.tokens;
    ids.reserve(tokens.size());
    for (size_t id = 0; id < tokens.size(); ++id) ids.emplace(tokens[id], static_cast<int32_t>(id));
    for (int b = 0; b < 256; ++b) {
      fallback[b] = model_lookup(fallback_token(b)).value_or(-1);
    }
    special.assign(tokens.size(), false);
    for (const AddedToken& a : spec.vocab.added) {
      special[a.id] = special[a.id] || a.special;
      (a.normalized ? normalized_added : raw_added).add(a);
    }
    byte_level = spec.byte_level();
    fast_decode = spec.decoder && spec.decoder->size() == 1 &&
                  std::holds_alternative<ByteLevelDecode>(spec.decoder->front());
    if (!fast_decode) return;
    byte_begin.reserve(tokens.size() + 1);
    for (const std::string& t : tokens) {
      byte_begin.push_back(bytes.size());
      bytes += token_to_bytes(t);
    }
    byte_begin.push_back(bytes.size());
  }

  void encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void model(std::string_view piece, std::vector<int32_t>& out) const;
  void symbols(std::string_view piece, std::vector<int32_t>& out) const;
  std::optional<int32_t> lookup(std::string_view token) const {
    const auto it = ids.find(token);
    return it == ids.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }
  // The BPE model sees model.vocab only, not added tokens appended after it (as HF's model).
  std::optional<int32_t> model_lookup(std::string_view token) const {
    const auto id = lookup(token);
    return id && *id < spec.vocab.model_size ? id : std::nullopt;
  }

  TokenizerSpec spec;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids;
  BpeMerger merger;
  PreTokenizer pre;
  std::array<int32_t, 256> fallback{};  // byte -> id of its <0xAB> token, -1 when absent
  AddedMatcher raw_added, normalized_added;
  std::vector<bool> special;
  bool byte_level = false;
  bool fast_decode = false;        // the decoder is ByteLevel alone: decode by concatenating token bytes
  std::string bytes;               // every token's raw bytes, back to back (fast_decode only)
  std::vector<size_t> byte_begin;  // id -> its bytes are bytes[byte_begin[id], byte_begin[id + 1])
  mutable WordCache cache;
};

void Tokenizer::Impl::encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
  const size_t bad = utf8_valid_prefix(text);
  if (bad != text.size())
    throw_input("encode: text is not valid UTF-8 at byte offset {} (text length {})", bad, text.size());
  const auto scratch = pre.scratch();
  Pieces pieces;
  const auto push = [&](int32_t id) { out.push_back(id); };
  const auto pre_tokenize = [&](std::string_view seg, bool at_origin) {
    pre.split(seg, at_origin, *scratch, pieces);
    for (size_t i = 0; i < pieces.size(); ++i) encode_piece(pieces[i], out);
  };
  // Added tokens are found in the input first, then (those marked normalized) in each normalized stretch.
  raw_added.split(
      text, allow_special,
      [&](std::string_view gap, size_t offset) {
        if (spec.normalizer.empty()) {
          normalized_added.split(
              gap, allow_special,
              [&](std::string_view seg, size_t off) { pre_tokenize(seg, offset + off == 0); }, push);
          return;
        }
        const std::string norm = normalize(spec.normalizer, gap);
        pre_tokenize(norm, offset == 0);  // the loader refuses normalized added tokens beside a normalizer
      },
      push);
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (byte_level && piece.size() == 1) {
    out.push_back(spec.vocab.byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache.append_cached(piece, out)) return;
  const size_t start = out.size();
  model(piece, out);
  if (cacheable) cache.put(piece, std::span<const int32_t>(out).subspan(start));
}

// The BPE model on one piece: raw bytes (byte-level) or text in the vocabulary's alphabet.
void Tokenizer::Impl::model(std::string_view piece, std::vector<int32_t>& out) const {
  if (spec.bpe.ignore_merges) {
    std::string mapped;
    if (byte_level)
      for (const char c : piece) mapped += byte_level_alphabet()[static_cast<unsigned char>(c)];
    if (const auto id = model_lookup(byte_level ? std::string_view(mapped) : piece))
      return out.push_back(*id);
  }
  if (byte_level) return merger.merge(piece, out);
  std::vector<int32_t> initial;
  symbols(piece, initial);
  merger.merge(initial, out);
}

// One symbol per character; a character outside the vocabulary becomes its <0xAB> byte tokens (byte_fallback,
// when all exist), else the unk token (consecutive ones fused with fuse_unk), else nothing (as HF).
void Tokenizer::Impl::symbols(std::string_view piece, std::vector<int32_t>& out) const {
  const BpeModelOptions& o = spec.bpe;
  bool pending_unk = false;
  for (size_t i = 0; i < piece.size();) {
    const size_t len = std::min(utf8_char_length(static_cast<unsigned char>(piece[i])), piece.size() - i);
    const std::string_view ch = piece.substr(i, len);
    i += len;
    if (const auto id = model_lookup(ch)) {
      if (pending_unk) out.push_back(*o.unk_id), pending_unk = false;
      out.push_back(*id);
      continue;
    }
    if (o.byte_fallback && std::all_of(ch.begin(), ch.end(), [&](char c) {
          return fallback[static_cast<unsigned char>(c)] >= 0;
        })) {
      // A pending unk stays pending across byte tokens (it lands after them), as in HF's merge_word.
      for (const char c : ch) out.push_back(fallback[static_cast<unsigned char>(c)]);
      continue;
    }
    if (!o.unk_id) continue;
    if (pending_unk && !o.fuse_unk) out.push_back(*o.unk_id);
    pending_unk = true;
  }
  if (pending_unk) out.push_back(*o.unk_id);
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

namespace {

// tokenizer_config.json's eos_token: a string or {"content": ...}; nullopt when the file or key is absent.
std::optional<std::string> configured_eos(const fs::path& dir) {
  const fs::path path = dir / "tokenizer_config.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const nlohmann::json cfg = read_json_file(path, "a JSON object (HF tokenizer_config.json)");
  if (!cfg.is_object() || !cfg.contains("eos_token") || cfg["eos_token"].is_null()) return std::nullopt;
  const nlohmann::json& e = cfg["eos_token"];
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object() && e.contains("content") && e["content"].is_string())
    return e["content"].get<std::string>();
  throw_input("{}: eos_token is {}, expected a token string or {{\"content\": ...}}", path.string(),
              e.dump());
}

}  // namespace

Tokenizer Tokenizer::build(TokenizerSpec spec, const std::string& where) {
  return Tokenizer(std::make_shared<const Impl>(std::move(spec), where));
}

Tokenizer Tokenizer::from_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  return build(gpt2_spec(load_vocab_and_merges(vocab_json, merges_txt)), vocab_json.string());
}

Tokenizer Tokenizer::from_json(const fs::path& tokenizer_json) {
  TokenizerSpec spec = load_tokenizer_spec(tokenizer_json);
  for (const std::string_view name : {"<|endoftext|>", "</s>", "<|end_of_text|>"}) {
    const auto& tokens = spec.vocab.tokens;
    const auto it = std::find(tokens.begin(), tokens.end(), name);
    if (spec.vocab.eos_id < 0 && it != tokens.end())
      spec.vocab.eos_id = static_cast<int32_t>(it - tokens.begin());
  }
  if (spec.vocab.eos_id < 0)
    throw_input(
        "{}: no end-of-sequence token, expected one of <|endoftext|>, </s>, <|end_of_text|> in the "
        "vocabulary or eos_token in tokenizer_config.json beside it",
        tokenizer_json.string());
  return build(std::move(spec), tokenizer_json.string());
}

Tokenizer Tokenizer::from_dir(const fs::path& dir) {
  constexpr std::string_view kExpected =
      "a tokenizer directory with tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw_input("{} is not a directory, expected {}", dir.string(), kExpected);
  const auto pair = [&](const char* vocab, const char* merges) -> std::optional<Tokenizer> {
    if (!fs::exists(dir / vocab, ec)) return std::nullopt;
    if (!fs::exists(dir / merges, ec))
      throw_input("{} is missing, expected it next to {}", (dir / merges).string(), (dir / vocab).string());
    return from_files(dir / vocab, dir / merges);
  };
  if (fs::exists(dir / "tokenizer.json", ec)) {
    TokenizerSpec spec = load_tokenizer_spec(dir / "tokenizer.json");
    if (const auto eos = configured_eos(dir)) {
      const auto& tokens = spec.vocab.tokens;
      const auto it = std::find(tokens.begin(), tokens.end(), *eos);
      if (it == tokens.end())
        throw_input("{}: eos_token {:?} is not a token of {}", (dir / "tokenizer_config.json").string(), *eos,
                    (dir / "tokenizer.json").string());
      spec.vocab.eos_id = static_cast<int32_t>(it - tokens.begin());
      return build(std::move(spec), (dir / "tokenizer.json").string());
    }
    return from_json(dir / "tokenizer.json");
  }
  if (auto t = pair("vocab.json", "merges.txt")) return *t;
  if (auto t = pair("encoder.json", "vocab.bpe")) return *t;
  throw_input("{} has no tokenizer files, expected {}", dir.string(), kExpected);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);  // GPT-2 averages about four bytes per token on English
  impl_->encode(text, allow_special, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_with_specials(std::string_view text, int64_t max_length) const {
  const TokenizerSpec& spec = impl_->spec;
  std::vector<int32_t> out = spec.prefix;
  impl_->encode(text, true, out);
  if (max_length > 0) {  // HF truncates the text and keeps the template's tokens
    const auto specials = static_cast<int64_t>(spec.prefix.size() + spec.suffix.size());
    const int64_t keep = std::max<int64_t>(0, max_length - specials);
    out.resize(std::min<size_t>(out.size(), spec.prefix.size() + static_cast<size_t>(keep)));
  }
  out.insert(out.end(), spec.suffix.begin(), spec.suffix.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  const auto n = m.spec.vocab.tokens.size();
  for (const int32_t id : ids)
    if (id < 0 || static_cast<size_t>(id) >= n)
      throw_input("decode: token id {} is out of range, expected 0..{} (vocab size {})", id, n - 1, n);
  if (m.fast_decode) {
    std::string bytes;
    for (const int32_t id : ids)
      if (!skip_special || !m.special[id])
        bytes.append(m.bytes, m.byte_begin[id], m.byte_begin[id + 1] - m.byte_begin[id]);
    return is_valid_utf8(bytes) ? bytes : to_valid_utf8(bytes);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids)
    if (!skip_special || !m.special[id]) tokens.push_back(m.spec.vocab.tokens[id]);
  const std::string text = decode_tokens(m.spec.decoder, std::move(tokens));
  return is_valid_utf8(text) ? text : to_valid_utf8(text);
}

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts, const PadOptions& opt) const {
  if (opt.max_length < 0)
    throw_input("encode_batch: max_length is {}, expected >= 0 (0 = longest)", opt.max_length);
  if (opt.pad_id < -1 || opt.pad_id >= vocab_size())
    throw_input("encode_batch: pad_id {} is out of range, expected -1 (eos) or 0..{}", opt.pad_id,
                vocab_size() - 1);
  const int32_t pad = opt.pad_id == -1 ? eos_id() : opt.pad_id;
  const auto limit = static_cast<size_t>(opt.max_length);
  BatchEncoding batch;
  batch.ids.reserve(texts.size());
  size_t width = limit;
  for (const std::string& text : texts) {
    std::vector<int32_t> ids = encode(text);
    if (limit > 0 && ids.size() > limit) {
      const auto cut = static_cast<std::ptrdiff_t>(ids.size() - limit);
      if (opt.truncate_left) {
        ids.erase(ids.begin(), ids.begin() + cut);
      } else {
        ids.resize(limit);
      }
    }
    if (limit == 0) width = std::max(width, ids.size());
    batch.ids.push_back(std::move(ids));
  }
  batch.attention_mask.reserve(texts.size());
  for (std::vector<int32_t>& ids : batch.ids) {
    const size_t real = ids.size(), fill = width - real;
    std::vector<int32_t> mask(width, 1);
    if (opt.pad_left) {
      ids.insert(ids.begin(), fill, pad);
      std::fill_n(mask.begin(), fill, 0);
    } else {
      ids.resize(width, pad);
      std::fill(mask.begin() + static_cast<std::ptrdiff_t>(real), mask.end(), 0);
    }
    batch.attention_mask.push_back(std::move(mask));
  }
  return batch;
}

int32_t Tokenizer::eos_id() const {
  return impl_->spec.vocab.eos_id;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  if (impl_->spec.prefix.empty()) return std::nullopt;
  return impl_->spec.prefix.front();
}

int64_t Tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->spec.vocab.tokens.size());
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

}  // namespace lethe::text
