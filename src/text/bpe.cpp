#include "text/bpe.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "text/bpe_merge.h"
#include "text/bpe_vocab.h"
#include "text/utf8.h"

namespace lethe::text {
namespace {

namespace fs = std::filesystem;

// GPT-2's pre-tokenisation pattern, verbatim (OpenAI encoder.py; HF ByteLevel with use_regex=true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buf{};
  pcre2_get_error_message(code, buf.data(), buf.size());
  return reinterpret_cast<const char*>(buf.data());
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

class Pretokenizer {
 public:
  Pretokenizer() {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern.data()), kGpt2Pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
    if (code_ == nullptr) throw std::runtime_error("cannot compile the GPT-2 regex: " + pcre2_message(err));
    // JIT is several times faster than the interpreter; without it (some platforms) matching still works.
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Pretokenizer() { pcre2_code_free(code_); }
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // One per encode() call: match data is scratch space and must not be shared between threads.
  MatchData match_data() const {
    MatchData md(pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!md) throw std::bad_alloc();
    return md;
  }

  // Calls piece(sv) for every regex match of seg in order, and for any text between matches (HF's "Isolated"
  // split keeps it, though with this pattern every character matches some alternative). seg must be valid
  // UTF-8: PCRE2 is told to skip its own check, which would otherwise rescan the rest of seg on every call.
  template <typename F>
  void split(std::string_view seg, pcre2_match_data* md, F&& piece) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(seg.data());
    size_t off = 0;
    while (off < seg.size()) {
      int rc = PCRE2_ERROR_JIT_STACKLIMIT;
      if (jit_) rc = pcre2_jit_match(code_, subject, seg.size(), off, 0, md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking frames on the heap
        rc = pcre2_match(code_, subject, seg.size(), off, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) return piece(seg.substr(off));
      if (rc < 0) throw std::runtime_error("GPT-2 regex match failed: " + pcre2_message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] <= ov[0]) throw std::logic_error("GPT-2 regex matched the empty string");
      if (ov[0] > off) piece(seg.substr(off, ov[0] - off));
      piece(seg.substr(ov[0], ov[1] - ov[0]));
      off = ov[1];
    }
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
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
  // A cheap mix of length and two bytes (words are >= 2 bytes): hashing twice would cost more than the
  // uneven spread, which only matters for lock contention.
  Shard& shard(std::string_view w) {
    const auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(w[i])); };
    return shards_[(w.size() * 3 + b(1) + b(w.size() - 1) * 7) % kShards];
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace

struct Gpt2Tokenizer::Impl {
  explicit Impl(BpeVocab v)
      : tokens(std::move(v.tokens)),
        byte_ids(v.byte_ids),
        merger(v.merges, v.byte_ids),
        added(std::move(v.added)),
        eos(v.eos_id) {
    ids.reserve(tokens.size());
    byte_begin.reserve(tokens.size() + 1);
    for (size_t id = 0; id < tokens.size(); ++id) {
      ids.emplace(tokens[id], static_cast<int32_t>(id));
      byte_begin.push_back(bytes.size());
      bytes += token_to_bytes(tokens[id]);
    }
    byte_begin.push_back(bytes.size());
    special.assign(tokens.size(), false);
    for (const AddedToken& a : added) special[a.id] = special[a.id] || a.special;
  }

  void encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view seg, pcre2_match_data* md, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> ids;
  std::array<int32_t, 256> byte_ids;
  BpeMerger merger;
  std::vector<AddedToken> added;
  int32_t eos;
  std::string bytes;               // every token's raw bytes, back to back
  std::vector<size_t> byte_begin;  // id -> its bytes are bytes[byte_begin[id], byte_begin[id + 1])
  std::vector<bool> special;
  Pretokenizer regex;
  mutable WordCache cache;
};

void Gpt2Tokenizer::Impl::encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
  const size_t bad = utf8_valid_prefix(text);
  if (bad != text.size())
    throw_input("encode: text is not valid UTF-8 at byte offset {} (text length {})", bad, text.size());
  const MatchData md = regex.match_data();
  size_t pos = 0;
  while (allow_special && pos < text.size()) {
    // Earliest added token, the longest one if several start there (HF's leftmost-longest match).
    size_t at = std::string_view::npos;
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : added) {
      const size_t p = text.find(a.content, pos);
      if (p < at || (p == at && p != std::string_view::npos && a.content.size() > hit->content.size()))
        at = p, hit = &a;
    }
    if (hit == nullptr) break;
    encode_ordinary(text.substr(pos, at - pos), md.get(), out);
    out.push_back(hit->id);
    pos = at + hit->content.size();
  }
  encode_ordinary(text.substr(pos), md.get(), out);
}

void Gpt2Tokenizer::Impl::encode_ordinary(std::string_view seg, pcre2_match_data* md,
                                          std::vector<int32_t>& out) const {
  regex.split(seg, md, [&](std::string_view piece) { encode_piece(piece, out); });
}

void Gpt2Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache.append_cached(piece, out)) return;
  const size_t start = out.size();
  merger.merge(piece, out);
  if (cacheable) cache.put(piece, std::span<const int32_t>(out).subspan(start));
}

Gpt2Tokenizer::Gpt2Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Gpt2Tokenizer Gpt2Tokenizer::from_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  return Gpt2Tokenizer(std::make_shared<const Impl>(load_vocab_and_merges(vocab_json, merges_txt)));
}

Gpt2Tokenizer Gpt2Tokenizer::from_dir(const fs::path& dir) {
  constexpr std::string_view kExpected =
      "a tokenizer directory with vocab.json + merges.txt, tokenizer.json, or encoder.json + vocab.bpe";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw_input("{} is not a directory, expected {}", dir.string(), kExpected);
  const auto pair = [&](const char* vocab, const char* merges) -> std::optional<Gpt2Tokenizer> {
    if (!fs::exists(dir / vocab, ec)) return std::nullopt;
    if (!fs::exists(dir / merges, ec))
      throw_input("{} is missing, expected it next to {}", (dir / merges).string(), (dir / vocab).string());
    return from_files(dir / vocab, dir / merges);
  };
  if (auto t = pair("vocab.json", "merges.txt")) return *t;
  if (fs::exists(dir / "tokenizer.json", ec))
    return Gpt2Tokenizer(std::make_shared<const Impl>(load_tokenizer_json(dir / "tokenizer.json")));
  if (auto t = pair("encoder.json", "vocab.bpe")) return *t;
  throw_input("{} has no tokenizer files, expected {}", dir.string(), kExpected);
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);  // GPT-2 averages about four bytes per token on English
  impl_->encode(text, allow_special, out);
  return out;
}

std::string Gpt2Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string bytes;
  for (const int32_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(m.tokens.size()))
      throw_input("decode: token id {} is out of range, expected 0..{} (vocab size {})", id,
                  m.tokens.size() - 1, m.tokens.size());
    if (skip_special && m.special[id]) continue;
    bytes.append(m.bytes, m.byte_begin[id], m.byte_begin[id + 1] - m.byte_begin[id]);
  }
  return is_valid_utf8(bytes) ? bytes : to_valid_utf8(bytes);
}

BatchEncoding Gpt2Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                          const PadOptions& opt) const {
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

int32_t Gpt2Tokenizer::eos_id() const {
  return impl_->eos;
}

int64_t Gpt2Tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->tokens.size());
}

std::optional<int32_t> Gpt2Tokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->ids.find(token);
  if (it == impl_->ids.end()) return std::nullopt;
  return it->second;
}

}  // namespace lethe::text
