#include "prep/sentence_embedder.h"

#include <algorithm>
#include <numeric>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "text/word_tokenize.h"

namespace lethe::prep {
namespace fs = std::filesystem;
namespace {

nlohmann::json read_json(const fs::path& file, const char* what) {
  nlohmann::json j = nlohmann::json::parse(read_text_file(file, what), nullptr, false);
  LETHE_CHECK_INPUT(!j.is_discarded(), "{}: not valid JSON ({})", file.string(), what);
  return j;
}

Pooling read_pooling(const fs::path& file) {
  const nlohmann::json j = read_json(file, "a sentence-transformers Pooling config");
  LETHE_CHECK_INPUT(j.is_object(), "{}: not a JSON object", file.string());
  static const std::pair<const char*, Pooling> kModes[] = {
      {"pooling_mode_mean_tokens", Pooling::kMean},
      {"pooling_mode_cls_token", Pooling::kCls},
      {"pooling_mode_max_tokens", Pooling::kMax},
      {"pooling_mode_mean_sqrt_len_tokens", Pooling::kMeanSqrtLen}};
  std::vector<Pooling> on;
  for (const auto& [key, mode] : kModes)
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) on.push_back(mode);
  for (const char* other : {"pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"})
    LETHE_CHECK_INPUT(!(j.contains(other) && j[other].is_boolean() && j[other].get<bool>()),
                      "{}: {} is not supported (mean, cls, max and mean_sqrt_len pooling are)", file.string(),
                      other);
  LETHE_CHECK_INPUT(on.size() == 1,
                    "{}: expected exactly one of pooling_mode_mean_tokens / cls_token / max_tokens / "
                    "mean_sqrt_len_tokens to be true, found {} (concatenated poolings are not supported)",
                    file.string(), on.size());
  return on[0];
}

}  // namespace

SentenceEmbedderSpec read_sentence_embedder_spec(const fs::path& dir) {
  SentenceEmbedderSpec s;
  s.encoder_dir = dir;
  const fs::path modules = dir / "modules.json";
  if (!fs::exists(modules)) return s;  // a plain BERT folder: mean pooling, normalised
  s.sentence_transformers = true;
  s.normalize = false;
  const nlohmann::json m = read_json(modules, "sentence-transformers modules.json");
  LETHE_CHECK_INPUT(m.is_array() && !m.empty(), "{}: expected a list of modules", modules.string());
  bool transformer = false, pooling = false;
  for (const auto& mod : m) {
    LETHE_CHECK_INPUT(mod.is_object() && mod.contains("type") && mod["type"].is_string(),
                      "{}: every module needs a 'type' string", modules.string());
    const std::string type = mod["type"].get<std::string>();
    const std::string path =
        mod.contains("path") && mod["path"].is_string() ? mod["path"].get<std::string>() : "";
    const std::string kind = type.substr(type.rfind('.') + 1);
    if (kind == "Transformer") {
      LETHE_CHECK_INPUT(!transformer && !pooling, "{}: Transformer must be the first module, once",
                        modules.string());
      transformer = true;
      s.encoder_dir = path.empty() ? dir : dir / path;
    } else if (kind == "Pooling") {
      LETHE_CHECK_INPUT(transformer && !pooling, "{}: Pooling must follow the Transformer, once",
                        modules.string());
      pooling = true;
      s.pooling = read_pooling(dir / path / "config.json");
    } else if (kind == "Normalize") {
      LETHE_CHECK_INPUT(pooling, "{}: Normalize must follow Pooling", modules.string());
      s.normalize = true;
    } else {
      throw_input("{}: module '{}' is not supported (lethe runs Transformer, Pooling and Normalize)",
                  modules.string(), type);
    }
  }
  LETHE_CHECK_INPUT(transformer && pooling, "{}: needs a Transformer and a Pooling module", modules.string());
  for (const fs::path& cfg :
       {dir / "sentence_bert_config.json", s.encoder_dir / "sentence_bert_config.json"}) {
    if (!fs::exists(cfg)) continue;
    const nlohmann::json j = read_json(cfg, "sentence_bert_config.json");
    LETHE_CHECK_INPUT(j.is_object(), "{}: not a JSON object", cfg.string());
    if (j.contains("max_seq_length") && !j["max_seq_length"].is_null()) {
      LETHE_CHECK_INPUT(j["max_seq_length"].is_number_integer() && j["max_seq_length"].get<int64_t>() >= 3,
                        "{}: max_seq_length must be an integer >= 3", cfg.string());
      s.max_seq_length = j["max_seq_length"].get<int64_t>();
    }
    if (j.contains("do_lower_case")) {
      LETHE_CHECK_INPUT(j["do_lower_case"].is_boolean(), "{}: do_lower_case must be true or false",
                        cfg.string());
      s.lower_case_text = j["do_lower_case"].get<bool>();
    }
    break;
  }
  return s;
}

SentenceEmbedder SentenceEmbedder::load(const fs::path& dir, int64_t max_tokens, torch::Device device) {
  SentenceEmbedderSpec spec = read_sentence_embedder_spec(dir);
  model::Bert bert = model::Bert::load(spec.encoder_dir, 0, device);
  text::WordPieceTokenizer tok = text::WordPieceTokenizer::from_dir(spec.encoder_dir);
  const int64_t limit = bert.config().max_position_embeddings;
  const int64_t keep = max_tokens > 0 ? max_tokens : spec.max_seq_length > 0 ? spec.max_seq_length : limit;
  LETHE_CHECK_INPUT(keep >= 3 && keep <= limit,
                    "{} word pieces per text (prep.max_tokens, else the folder's max_seq_length): {} takes "
                    "3..{} ([CLS] and [SEP] included)",
                    keep, dir.string(), limit);
  return SentenceEmbedder(std::move(spec), std::move(bert), std::move(tok), keep);
}

std::string SentenceEmbedder::describe() const {
  static const char* const kNames[] = {"mean", "cls", "max", "mean_sqrt_len"};
  return fmt::format("{} ({}: {} pooling{}, {} word pieces)", spec_.encoder_dir.filename().string(),
                     spec_.sentence_transformers ? "sentence-transformers" : "BERT folder",
                     kNames[static_cast<int>(spec_.pooling)], spec_.normalize ? ", normalised" : "",
                     max_tokens_);
}

torch::Tensor SentenceEmbedder::embed(const std::vector<std::string>& texts, int64_t batch) const {
  c10::InferenceMode guard;
  const auto n = static_cast<int64_t>(texts.size());
  if (n == 0) return torch::empty({0, bert_.config().hidden_size}, torch::kFloat);
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    ids[i] = tok_.encode(spec_.lower_case_text ? text::lower(texts[i]) : texts[i], true,
                         static_cast<size_t>(max_tokens_));
  std::vector<int64_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ids[static_cast<size_t>(a)].size() > ids[static_cast<size_t>(b)].size();
  });
  Progress progress("prep: embedding texts", n, "texts");
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < n; s += batch) {
    const int64_t b = std::min(batch, n - s);
    const auto len = static_cast<int64_t>(ids[static_cast<size_t>(order[static_cast<size_t>(s)])].size());
    // [b, len] ids padded with [PAD], mask 1 on real tokens; built on the host, one copy to the device.
    std::vector<int64_t> xv(static_cast<size_t>(b * len), tok_.pad_id()), mv(static_cast<size_t>(b * len), 0);
    for (int64_t r = 0; r < b; ++r) {
      const auto& v = ids[static_cast<size_t>(order[static_cast<size_t>(s + r)])];
      std::copy(v.begin(), v.end(), xv.begin() + r * len);
      std::fill_n(mv.begin() + r * len, v.size(), 1);
    }
    const torch::Tensor x = torch::from_blob(xv.data(), {b, len}, torch::kLong).clone();
    const torch::Tensor m = torch::from_blob(mv.data(), {b, len}, torch::kLong).clone();
    torch::Tensor h = bert_.forward(x, m);                             // [b, len, C] fp32
    torch::Tensor mf = m.to(h.device(), torch::kFloat).unsqueeze(-1);  // [b, len, 1]
    torch::Tensor e;
    switch (spec_.pooling) {
      case Pooling::kCls:
        e = h.select(1, 0);
        break;
      case Pooling::kMax:
        e = h.masked_fill(mf == 0, -1e9).amax(1);
        break;
      case Pooling::kMean:
        e = (h * mf).sum(1) / mf.sum(1).clamp_min(1e-9);
        break;
      case Pooling::kMeanSqrtLen:
        e = (h * mf).sum(1) / mf.sum(1).sqrt();
        break;
    }
    if (spec_.normalize) e = e / e.norm(2, 1, true).clamp_min(1e-12);  // torch F.normalize
    parts.push_back(e);
    progress.add(b);
  }
  torch::Tensor sorted = torch::cat(parts).cpu();  // one copy back: the search runs in float64 on the host
  torch::Tensor out = torch::empty_like(sorted);
  out.index_copy_(0, torch::tensor(order, torch::kLong), sorted);
  return out;
}

}  // namespace lethe::prep
