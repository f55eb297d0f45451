// Reading a tokenizer.json into a TokenizerSpec: every component is either one the pipeline implements
// exactly, or a refusal naming the file, the field and the components that are implemented.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer_spec.h"
#include "text/utf8.h"

namespace lethe::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kExpected = "a HF tokenizers tokenizer.json with a BPE model";

// One tokenizer.json being read; field paths in messages are JSON paths such as
// pre_tokenizer.pretokenizers[0].
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void refuse(const std::string& field, const json& got, std::string_view expected) const {
    throw_input("{}: {} is {}, expected {}", file_, field, got.dump(), expected);
  }
  const std::string& file() const { return file_; }

  const json& object(const json& j, const std::string& field) const {
    if (!j.is_object()) refuse(field, j, "a JSON object");
    return j;
  }
  std::string type(const json& j, const std::string& field) const {
    object(j, field);
    const auto it = j.find("type");
    if (it == j.end() || !it->is_string()) refuse(field + ".type", it == j.end() ? json() : *it, "a string");
    return it->get<std::string>();
  }
  std::string string(const json& j, const char* key, const std::string& field) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string())
      refuse(field + "." + key, it == j.end() ? json() : *it, "a string");
    return it->get<std::string>();
  }
  bool boolean(const json& j, const char* key, const std::string& field, bool fallback) const {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) refuse(field + "." + key, *it, "true or false");
    return it->get<bool>();
  }
  std::size_t count(const json& j, const char* key, const std::string& field) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned())
      refuse(field + "." + key, it == j.end() ? json() : *it, "a non-negative integer");
    return it->get<std::size_t>();
  }
  const json& array(const json& j, const char* key, const std::string& field) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_array()) refuse(field + "." + key, it == j.end() ? json() : *it, "an array");
    return *it;
  }
  // {"String": "..."} (a literal) or, where allowed, {"Regex": "..."}; returns (pattern, is_regex).
  std::pair<std::string, bool> pattern(const json& j, const std::string& field, bool regex_ok) const {
    const auto it = j.find("pattern");
    const std::string at = field + ".pattern";
    const std::string_view expected =
        regex_ok ? R"({"String": "..."} or {"Regex": "..."})" : R"({"String": "..."})";
    if (it == j.end() || !it->is_object() || it->size() != 1)
      refuse(at, it == j.end() ? json() : *it, expected);
    if (it->contains("String") && (*it)["String"].is_string())
      return {(*it)["String"].get<std::string>(), false};
    if (regex_ok && it->contains("Regex") && (*it)["Regex"].is_string())
      return {(*it)["Regex"].get<std::string>(), true};
    refuse(at, *it, expected);
  }
  // Steps of a component that may be one object or {"type": "Sequence", key: [...]}.
  template <typename Step, typename One>
  void steps(const json& j, const std::string& field, const char* list_key, One one,
             std::vector<Step>& out) const {
    if (j.is_null()) return;
    if (type(j, field) != "Sequence") return one(*this, j, field, out);
    const json& list = array(j, list_key, field);
    for (std::size_t i = 0; i < list.size(); ++i)
      steps(list[i], fmt::format("{}.{}[{}]", field, list_key, i), list_key, one, out);
  }

 private:
  std::string file_;
};

PrependScheme prepend_scheme(const Reader& r, const json& j, const std::string& field) {
  std::string scheme = "always";
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null())
    scheme = r.string(j, "prepend_scheme", field);
  if (!r.boolean(j, "add_prefix_space", field, true))
    scheme = "never";  // files written before prepend_scheme
  if (scheme == "always") return PrependScheme::kAlways;
  if (scheme == "first") return PrependScheme::kFirst;
  if (scheme == "never") return PrependScheme::kNever;
  r.refuse(field + ".prepend_scheme", scheme, "\"always\", \"first\" or \"never\"");
}

std::string one_char(const Reader& r, const json& j, const char* key, const std::string& field) {
  std::string s = r.string(j, key, field);
  if (s.empty() || !is_valid_utf8(s) || utf8_char_length(static_cast<unsigned char>(s[0])) != s.size())
    r.refuse(field + "." + key, s, "a single character");
  return s;
}

void normalizer_step(const Reader& r, const json& j, const std::string& field,
                     std::vector<NormalizerStep>& out) {
  const std::string t = r.type(j, field);
  if (t == "Prepend") return out.push_back(PrependStep{r.string(j, "prepend", field)});
  if (t == "Replace") {
    auto [pattern, regex] = r.pattern(j, field, false);
    if (pattern.empty()) r.refuse(field + ".pattern", pattern, "a non-empty string");
    return out.push_back(ReplaceStep{pattern, r.string(j, "content", field)});
  }
  r.refuse(field + ".type", t, "Sequence, Prepend or Replace (the normalizers lethe implements)");
}

void pre_tokenizer_step(const Reader& r, const json& j, const std::string& field,
                        std::vector<PreTokenizerStep>& out) {
  const std::string t = r.type(j, field);
  if (!out.empty() && std::holds_alternative<ByteLevelStep>(out.back()))
    r.refuse(field, j, "nothing after the ByteLevel pre-tokenizer (it must be the last step)");
  if (t == "ByteLevel")
    return out.push_back(
        ByteLevelStep{r.boolean(j, "add_prefix_space", field, true), r.boolean(j, "use_regex", field, true)});
  if (t == "Metaspace")
    return out.push_back(MetaspaceStep{one_char(r, j, "replacement", field), prepend_scheme(r, j, field),
                                       r.boolean(j, "split", field, true)});
  if (t == "Split") {
    auto [pattern, regex] = r.pattern(j, field, true);
    if (pattern.empty()) r.refuse(field + ".pattern", pattern, "a non-empty pattern");
    if (r.boolean(j, "invert", field, false))
      r.refuse(field + ".invert", true, "false (invert is not implemented)");
    const std::string b = r.string(j, "behavior", field);
    SplitBehavior behavior{};
    if (b == "Isolated")
      behavior = SplitBehavior::kIsolated;
    else if (b == "Removed")
      behavior = SplitBehavior::kRemoved;
    else if (b == "MergedWithPrevious")
      behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      behavior = SplitBehavior::kMergedWithNext;
    else
      r.refuse(field + ".behavior", b, "Isolated, Removed, MergedWithPrevious or MergedWithNext");
    return out.push_back(SplitStep{pattern, regex, behavior});
  }
  r.refuse(field + ".type", t,
           "Sequence, Split, ByteLevel or Metaspace (the pre-tokenizers lethe implements)");
}

void decoder_step(const Reader& r, const json& j, const std::string& field, std::vector<DecoderStep>& out) {
  const std::string t = r.type(j, field);
  if (t == "ByteLevel") return out.push_back(ByteLevelDecode{});
  if (t == "ByteFallback") return out.push_back(ByteFallbackDecode{});
  if (t == "Fuse") return out.push_back(FuseDecode{});
  if (t == "Replace") {
    auto [pattern, regex] = r.pattern(j, field, false);
    if (pattern.empty()) r.refuse(field + ".pattern", pattern, "a non-empty string");
    return out.push_back(ReplaceDecode{pattern, r.string(j, "content", field)});
  }
  if (t == "Strip")
    return out.push_back(
        StripDecode{one_char(r, j, "content", field), r.count(j, "start", field), r.count(j, "stop", field)});
  if (t == "Metaspace")
    return out.push_back(MetaspaceDecode{one_char(r, j, "replacement", field), prepend_scheme(r, j, field)});
  r.refuse(
      field + ".type", t,
      "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip or Metaspace (the decoders lethe implements)");
}

// TemplateProcessing's `single`: special tokens before and after one "A" sequence. Other post-processors
// either leave ids alone (ByteLevel only trims offsets) or are refused.
void post_processor(const Reader& r, const json& j, const std::string& field, TokenizerSpec& spec) {
  if (j.is_null()) return;
  const std::string t = r.type(j, field);
  if (t == "Sequence") {
    const json& list = r.array(j, "processors", field);
    for (std::size_t i = 0; i < list.size(); ++i)
      post_processor(r, list[i], fmt::format("{}.processors[{}]", field, i), spec);
    return;
  }
  if (t == "ByteLevel") return;
  if (t != "TemplateProcessing")
    r.refuse(field + ".type", t,
             "Sequence, ByteLevel or TemplateProcessing (the post-processors lethe implements)");
  if (!spec.prefix.empty() || !spec.suffix.empty()) r.refuse(field, j, "one TemplateProcessing");
  const json& single = r.array(j, "single", field);
  const json specials = j.value("special_tokens", json::object());
  r.object(specials, field + ".special_tokens");
  bool seen_sequence = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const std::string at = fmt::format("{}.single[{}]", field, i);
    const json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      if (seen_sequence || r.string(item["Sequence"], "id", at + ".Sequence") != "A")
        r.refuse(at, item, "one {\"Sequence\": {\"id\": \"A\"}} (a single text)");
      seen_sequence = true;
      continue;
    }
    if (!item.is_object() || !item.contains("SpecialToken"))
      r.refuse(at, item, "{\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
    const std::string name = r.string(item["SpecialToken"], "id", at + ".SpecialToken");
    if (!specials.contains(name))
      r.refuse(at, item, fmt::format("{:?} to be in {}.special_tokens", name, field));
    const json& ids = r.array(specials[name], "ids", fmt::format("{}.special_tokens[{:?}]", field, name));
    for (const json& id : ids) {
      if (!id.is_number_unsigned() || id.get<std::size_t>() >= spec.vocab.tokens.size())
        r.refuse(fmt::format("{}.special_tokens[{:?}].ids", field, name), ids, "ids inside the vocabulary");
      (seen_sequence ? spec.suffix : spec.prefix).push_back(id.get<int32_t>());
    }
  }
  if (!seen_sequence) r.refuse(field + ".single", single, "a template with the sequence \"A\" in it");
}

void bpe_options(const Reader& r, const json& model, TokenizerSpec& spec) {
  const auto absent_or = [&](const char* key, const json& allowed, std::string_view why) {
    const auto it = model.find(key);
    if (it != model.end() && !it->is_null() && *it != allowed)
      r.refuse(std::string("model.") + key, *it, fmt::format("{} or null ({})", allowed.dump(), why));
  };
  absent_or("dropout", 0.0, "BPE dropout is not implemented");
  absent_or("continuing_subword_prefix", "", "subword prefixes are not implemented");
  absent_or("end_of_word_suffix", "", "word suffixes are not implemented");
  BpeModelOptions& o = spec.bpe;
  o.byte_fallback = r.boolean(model, "byte_fallback", "model", false);
  o.fuse_unk = r.boolean(model, "fuse_unk", "model", false);
  o.ignore_merges = r.boolean(model, "ignore_merges", "model", false);
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string unk = r.string(model, "unk_token", "model");
    const auto& tokens = spec.vocab.tokens;
    const auto model_end = tokens.begin() + spec.vocab.model_size;
    const auto it = std::find(tokens.begin(), model_end, unk);
    if (it == model_end) r.refuse("model.unk_token", unk, "a token of model.vocab");
    o.unk_id = static_cast<int32_t>(it - tokens.begin());
  }
}

}  // namespace

TokenizerSpec load_tokenizer_spec(const fs::path& path) {
  const Reader r(path.string());
  const json root = read_json_file(path, kExpected);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
    throw_input("{}: no \"model\" object, expected {}", r.file(), kExpected);
  const json& model = root["model"];
  if (!model.contains("type") || model["type"] != "BPE")
    r.refuse("model.type", model.value("type", json()), "\"BPE\" (the only model lethe implements)");

  TokenizerSpec spec;
  r.steps(root.value("normalizer", json()), "normalizer", "normalizers", normalizer_step, spec.normalizer);
  r.steps(root.value("pre_tokenizer", json()), "pre_tokenizer", "pretokenizers", pre_tokenizer_step,
          spec.pre_tokenizer);
  if (const json d = root.value("decoder", json()); !d.is_null()) {
    spec.decoder.emplace();
    r.steps(d, "decoder", "decoders", decoder_step, *spec.decoder);
  }
  spec.vocab = read_bpe_tables(root, r.file(), spec.byte_level());
  bpe_options(r, model, spec);
  post_processor(r, root.value("post_processor", json()), "post_processor", spec);
  if (!spec.normalizer.empty())
    for (std::size_t i = 0; i < spec.vocab.added.size(); ++i)
      if (spec.vocab.added[i].normalized)
        r.refuse(
            fmt::format("added_tokens[{}].normalized", i), true,
            "false when there is a normalizer (matching added tokens in normalized text is not implemented)");
  return spec;
}

TokenizerSpec gpt2_spec(BpeVocab vocab) {
  TokenizerSpec spec;
  spec.vocab = std::move(vocab);
  spec.pre_tokenizer.push_back(ByteLevelStep{false, true});
  spec.decoder.emplace().push_back(ByteLevelDecode{});
  return spec;
}

}  // namespace lethe::text
