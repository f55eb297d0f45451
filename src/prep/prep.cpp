#include "prep/prep.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <unistd.h>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/io.h"
#include "data/npy.h"
#include "data/rows.h"
#include "data/sampler.h"
#include "io/hdf5.h"
#include "model/hf_checkpoint.h"
#include "prep/knn.h"
#include "prep/pairs.h"
#include "prep/sentence_embedder.h"
#include "text/csv.h"
#include "text/tokenizer.h"

namespace lethe::prep {
namespace fs = std::filesystem;
namespace {

int64_t parse_doc_id(const std::string& s, const std::string& file, size_t line) {
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  LETHE_CHECK_INPUT(ec == std::errc() && p == s.data() + s.size(),
                    "{}: row {}: doc_id '{}' is not an integer row index", file, line, s);
  return v;
}

// Target row indices, ascending (ICU keeps the source order), validated against the source's row count.
std::vector<int64_t> select_targets(const PrepSection& p, int64_t rows, uint64_t seed) {
  std::vector<int64_t> ids;
  std::string origin;
  if (!p.forget_csv.empty()) {
    const text::CsvTable t = text::read_csv(p.forget_csv);
    const size_t col = t.column("doc_id");
    for (size_t i = 0; i < t.rows.size(); ++i)
      ids.push_back(parse_doc_id(t.rows[i][col], p.forget_csv, i + 2));
    origin = p.forget_csv;
  } else if (!p.forget_ids.empty()) {
    ids = p.forget_ids;
    origin = "prep.forget_ids";
  } else if (p.forget_random > 0) {
    LETHE_CHECK_INPUT(p.forget_random < rows, "prep.forget_random = {}: the source has only {} rows",
                      p.forget_random, rows);
    const std::vector<int64_t> perm = data::GlobalBatchSampler(rows, 1, seed).permutation(0);
    ids.assign(perm.begin(), perm.begin() + p.forget_random);
    origin = "prep.forget_random";
  }
  LETHE_CHECK_INPUT(!ids.empty(),
                    "the forget set is empty: set prep.forget_csv (a doc_id CSV), prep.forget_ids or "
                    "prep.forget_random");
  for (int64_t id : ids)
    LETHE_CHECK_INPUT(id >= 0 && id < rows, "{}: doc_id {} is out of range: {} has rows 0..{}", origin, id,
                      p.source, rows - 1);
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  LETHE_CHECK_INPUT(dup == ids.end(), "{}: doc_id {} is listed twice", origin, dup == ids.end() ? 0 : *dup);
  return ids;
}

// The rows as the sentence embedder reads them: decoded with the rows' GPT-2 tokenizer (and, for
// decode_cleanup hf4, cleaned up as transformers 4.x's decode did for ICU's data_prep.py), then embedded.
torch::Tensor embed_with_bert(const Config& cfg, const torch::Tensor& text, torch::Device device,
                              std::string& what) {
  const PrepSection& p = cfg.prep;
  LETHE_CHECK_INPUT(
      !p.embedder_path.empty(),
      "prep.embedder = bert needs prep.embedder_path: a sentence-transformers folder "
      "(all-MiniLM-L6-v2; launch/setup.sh unpacks it to ~/.cache/lethe/models/all-MiniLM-L6-v2)");
  LETHE_CHECK_INPUT(
      !cfg.tokenizer.path.empty(),
      "prep.embedder = bert embeds decoded text: set tokenizer.path to the rows' GPT-2 tokenizer");
  const text::Tokenizer gpt2 = text::Tokenizer::from_dir(cfg.tokenizer.path);
  const SentenceEmbedder embedder = SentenceEmbedder::load(p.embedder_path, p.max_tokens, device);
  const bool clean = cfg.tokenizer.decode_cleanup == DecodeCleanup::kHf4;
  const std::vector<std::string> texts = data::decode_rows(text, gpt2, clean);
  what = fmt::format("bert({}; {})", p.embedder_path, embedder.describe());
  spdlog::info("prep: sentence embeddings of {} decoded rows ({}) with {}", texts.size(),
               clean ? "transformers 4.x clean-up" : "no clean-up", embedder.describe());
  return embedder.embed(texts, p.batch_size);
}

torch::Tensor embed_with_lm(const Config& cfg, const torch::Tensor& text, torch::Device device,
                            std::string& what) {
  const std::string path = !cfg.prep.embedder_path.empty() ? cfg.prep.embedder_path : cfg.model.path;
  LETHE_CHECK_INPUT(!path.empty(),
                    "prep.embedder = lm needs prep.embedder_path (or model.path): an HF GPT-Neo folder");
  model::CausalLm lm = model::load_hf_model(path, torch::kFloat, device);
  LETHE_CHECK_INPUT(text.max().item<int64_t>() < lm->config().vocab_size(),
                    "{}: token ids exceed the vocabulary ({}) of {}", cfg.prep.source,
                    lm->config().vocab_size(), path);
  what = fmt::format("lm({})", path);
  spdlog::info("prep: embedding {} rows with {}", text.size(0), path);
  return lm_embeddings(lm, text, cfg.prep.batch_size);
}

// prep.embeddings_cache (HDF5): attributes format = "lethe-embeddings", format_version 1, key, embedder;
// /embeddings [rows, C] float32. The key is what the vectors depend on: the tokens (XXH3, cols, rows), the
// span embedded, and the embedder as configured (kind, folder, max_tokens; for bert also the tokenizer that
// decodes the rows and the clean-up). Folders are compared by path: replacing a model in place needs the
// cache deleted.
std::string cache_key(const Config& cfg, const data::TokenArray& a) {
  const PrepSection& p = cfg.prep;
  std::string key = fmt::format(
      "xxh3={:016x} rows={} cols={} embed_begin={} embedder={} path={} max_tokens={}",
      io::checksum(a.values.data(), a.values.size() * sizeof(a.values[0])), a.rows, a.cols, p.embed_begin,
      enum_name(p.embedder), p.embedder_path.empty() ? cfg.model.path : p.embedder_path, p.max_tokens);
  if (p.embedder == Embedder::kBert)
    key += fmt::format(" tokenizer={} decode_cleanup={}", cfg.tokenizer.path,
                       enum_name(cfg.tokenizer.decode_cleanup));
  return key;
}

torch::Tensor cached_embeddings(const Config& cfg, const data::TokenArray& a, std::string& what) {
  const fs::path file = cfg.prep.embeddings_cache;
  if (file.empty() || !fs::exists(file)) return {};
  try {
    io::H5File f = io::H5File::open(file);
    if (!f.has_attr("format") || f.attr_string("format") != "lethe-embeddings" ||
        f.attr_int("format_version") != 1 || f.attr_string("key") != cache_key(cfg, a)) {
      spdlog::warn("prep: {} was made from other rows or another embedder; embedding again", file.string());
      return {};
    }
    std::vector<hsize_t> dims;
    std::vector<float> v = f.read<float>("embeddings", &dims);
    LETHE_CHECK_INPUT(dims.size() == 2 && static_cast<int64_t>(dims[0]) == a.rows,
                      "{}: /embeddings is not [{}, C]; delete the file to rebuild it", file.string(), a.rows);
    what = f.attr_string("embedder");
    spdlog::info("prep: embeddings of {} rows read from {}", a.rows, file.string());
    return torch::from_blob(v.data(), {static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1])},
                            torch::kFloat)
        .clone();
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw_input("{}: cannot read the embeddings cache ({}); delete it to rebuild it", file.string(),
                e.what());
  }
}

// Best effort: the embeddings are already computed, so a cache that cannot be written is a warning.
void write_embeddings(const Config& cfg, const data::TokenArray& a, const std::string& what,
                      const torch::Tensor& e) {
  const fs::path file = cfg.prep.embeddings_cache;
  const fs::path tmp = file.parent_path() / fmt::format(".{}.h5tmp-{}", file.filename().string(), ::getpid());
  try {
    if (file.has_parent_path()) fs::create_directories(file.parent_path());
    {
      io::H5File f = io::H5File::create(tmp);
      f.set_attr("format", std::string("lethe-embeddings"));
      f.set_attr("format_version", int64_t{1});
      f.set_attr("key", cache_key(cfg, a));
      f.set_attr("embedder", what);
      const torch::Tensor c = e.to(torch::kFloat).contiguous();
      f.write<float>("embeddings", c.data_ptr<float>(),
                     {static_cast<hsize_t>(c.size(0)), static_cast<hsize_t>(c.size(1))});
      f.close();
    }
    const std::string bytes = read_text_file(tmp, "the embeddings file just written");
    fs::remove(tmp);
    write_file_atomic(file, {std::as_bytes(std::span(bytes.data(), bytes.size()))});
    spdlog::info("prep: embeddings written to {}", file.string());
  } catch (const std::exception& ex) {
    std::error_code ec;
    fs::remove(tmp, ec);
    spdlog::warn("prep: could not write the embeddings cache {} ({}); continuing without it", file.string(),
                 ex.what());
  }
}

// prep.rows = reencoded: ICU's Datasets_mean.py round trip of both row sets (data/rows.h), to the rows' own
// length. The stored tokens stay in the file: validation takes its prompt and true suffix from them.
void reencode_pairs(const Config& cfg, Pairs& out) {
  LETHE_CHECK_INPUT(!cfg.tokenizer.path.empty(),
                    "prep.rows = reencoded decodes and re-encodes the rows: set tokenizer.path to the rows' "
                    "GPT-2 tokenizer");
  const text::Tokenizer tok = text::Tokenizer::from_dir(cfg.tokenizer.path);
  const bool clean = cfg.tokenizer.decode_cleanup == DecodeCleanup::kHf4;
  const int64_t t = out.forget_tokens.size(1);
  out.rows = RowTokens::kReencoded;
  out.forget_input = data::reencode_rows(out.forget_tokens, tok, clean, t);
  out.neighbour_input = data::reencode_rows(out.neighbour_tokens, tok, clean, t);
  const int64_t n = out.forget_tokens.size(0);
  spdlog::info(
      "prep: rows decoded ({}) and re-encoded to {} tokens: {} of {} forget rows and {} of {} "
      "neighbour rows differ from the stored tokens",
      clean ? "transformers 4.x clean-up" : "no clean-up", t,
      data::rows_differing(out.forget_input, data::stored_rows(out.forget_tokens)), n,
      data::rows_differing(out.neighbour_input, data::stored_rows(out.neighbour_tokens)), n);
}

}  // namespace

PrepOutcome run_prep(const Config& cfg, torch::Device device) {
  const PrepSection& p = cfg.prep;
  data::TokenArray a = data::read_npy(p.source);
  LETHE_CHECK_INPUT(a.rows > 1 && a.cols > 1, "{}: expected a [rows, T] token array, got {} x {}", p.source,
                    a.rows, a.cols);
  torch::Tensor rows = torch::from_blob(a.values.data(), {a.rows, a.cols}, torch::kLong).clone();
  LETHE_CHECK_INPUT(p.embed_begin < a.cols, "prep.embed_begin = {}: rows of {} have only {} tokens",
                    p.embed_begin, p.source, a.cols);
  const std::vector<int64_t> targets = select_targets(p, a.rows, cfg.runtime.seed);
  std::vector<int64_t> pool;
  std::set<int64_t> is_target(targets.begin(), targets.end());
  for (int64_t i = 0; i < a.rows; ++i)
    if (!is_target.count(i)) pool.push_back(i);
  LETHE_CHECK_INPUT(static_cast<int64_t>(pool.size()) >= p.k,
                    "prep.k = {}: only {} non-target rows are left to search", p.k, pool.size());

  torch::Tensor target_idx = torch::tensor(targets), pool_idx = torch::tensor(pool);
  torch::Tensor text = rows.narrow(1, p.embed_begin, a.cols - p.embed_begin);  // ICU: the last 100 tokens
  Neighbours nn;
  std::string embedder;
  if (p.embedder == Embedder::kTfidf) {
    embedder = fmt::format("tfidf(1..{}-grams)", p.ngram);
    spdlog::info("prep: tf-idf over token 1..{}-grams of {} rows", p.ngram, a.rows);
    torch::Tensor d2 = tfidf_sq_distances(text, p.ngram, target_idx);  // [Q, R]
    nn = knn_from_distances(d2.index_select(1, pool_idx), p.k);
  } else {
    std::string what;
    torch::Tensor e = cached_embeddings(cfg, a, what);
    if (!e.defined()) {
      e = p.embedder == Embedder::kBert ? embed_with_bert(cfg, text, device, what)
                                        : embed_with_lm(cfg, text, device, what);
      if (!p.embeddings_cache.empty()) write_embeddings(cfg, a, what, e);
    }
    embedder = what;
    nn = exact_knn(e.index_select(0, target_idx), e.index_select(0, pool_idx), p.k);
  }
  Pairs out;
  out.forget_ids = target_idx;
  out.forget_tokens = rows.index_select(0, target_idx);
  out.neighbour_ids = pool_idx.index_select(0, nn.ids.reshape({-1})).reshape(nn.ids.sizes());
  out.neighbour_distances = nn.distances;
  out.neighbour_tokens = rows.index_select(0, out.neighbour_ids.select(1, 0).contiguous());
  out.retain_ids = pool_idx;
  out.source = p.source;
  out.embedder = embedder;
  out.config_yaml = dump_config(cfg);
  if (p.rows == RowTokens::kReencoded) reencode_pairs(cfg, out);
  const fs::path dir = fs::path(p.output_dir) / p.name;
  write_pairs(dir, out);
  PrepOutcome o{dir / "pairs.h5", static_cast<int64_t>(targets.size()), static_cast<int64_t>(pool.size()), 0};
  std::set<int64_t> distinct;
  for (int64_t i = 0; i < out.neighbour_ids.size(0); ++i)
    distinct.insert(out.neighbour_ids[i][0].item<int64_t>());
  o.distinct_neighbours = static_cast<int64_t>(distinct.size());
  return o;
}

}  // namespace lethe::prep
