#include "prep/pairs.h"

#include <unistd.h>

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"
#include "io/hdf5.h"

namespace lethe::prep {
namespace fs = std::filesystem;
namespace {

std::vector<hsize_t> dims_of(const torch::Tensor& t) {
  std::vector<hsize_t> d;
  for (int64_t s : t.sizes()) d.push_back(static_cast<hsize_t>(s));
  return d;
}

template <class T>
void put(const io::H5File& f, const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  f.write<T>(name, c.data_ptr<T>(), dims_of(c));
}

template <class T>
torch::Tensor get(const io::H5File& f, const std::string& name, int64_t ndim, torch::ScalarType type) {
  LETHE_CHECK_INPUT(f.exists(name), "{}: dataset /{} is missing; re-run lethe prep", f.path().string(), name);
  std::vector<hsize_t> dims;
  std::vector<T> v = f.read<T>(name, &dims);
  LETHE_CHECK_INPUT(static_cast<int64_t>(dims.size()) == ndim, "{}: /{} has {} dimensions, expected {}",
                    f.path().string(), name, dims.size(), ndim);
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  return torch::from_blob(v.data(), sizes, type).clone();
}

}  // namespace

void write_pairs(const fs::path& dir, const Pairs& p) {
  fs::create_directories(dir);
  const fs::path file = dir / "pairs.h5", tmp = dir / fmt::format(".pairs.h5.tmp-{}", ::getpid());
  struct RemoveTmp {  // the temporary file never outlives a failed write
    const fs::path& p;
    ~RemoveTmp() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } guard{tmp};
  {
    io::H5File f = io::H5File::create(tmp);
    f.set_attr("format", std::string("lethe-pairs"));
    f.set_attr("format_version", kPairsFormatVersion);
    f.set_attr("source", p.source);
    f.set_attr("embedder", p.embedder);
    f.set_attr("k", p.neighbour_ids.size(1));
    f.set_attr("seq_len", p.forget_tokens.size(1));
    put<int64_t>(f, "forget/ids", p.forget_ids);
    put<int64_t>(f, "forget/tokens", p.forget_tokens);
    put<int64_t>(f, "neighbours/ids", p.neighbour_ids);
    put<double>(f, "neighbours/distances", p.neighbour_distances);
    put<int64_t>(f, "neighbours/tokens", p.neighbour_tokens);
    put<int64_t>(f, "retain/ids", p.retain_ids);
    f.set_attr("rows", std::string(enum_name(p.rows)));
    if (p.rows == RowTokens::kReencoded) {
      auto mask = [](const data::ModelRows& r) {
        return r.mask.defined() ? r.mask : torch::ones_like(r.ids);
      };
      put<int64_t>(f, "forget/input_ids", p.forget_input.ids);
      put<int64_t>(f, "forget/attention_mask", mask(p.forget_input));
      put<int64_t>(f, "neighbours/input_ids", p.neighbour_input.ids);
      put<int64_t>(f, "neighbours/attention_mask", mask(p.neighbour_input));
    }
    f.write_string("config", p.config_yaml);
    f.close();
  }
  // Re-write through write_file_atomic for the fsync-and-rename guarantee; the file is a few MB.
  const std::string bytes = read_text_file(tmp, "the pairs file just written");
  write_file_atomic(file, {std::as_bytes(std::span(bytes.data(), bytes.size()))});
}

Pairs read_pairs(const fs::path& dir_or_file) {
  const fs::path file = fs::is_directory(dir_or_file) ? dir_or_file / "pairs.h5" : dir_or_file;
  LETHE_CHECK_INPUT(fs::is_regular_file(file),
                    "{}: no prepared dataset here; run `lethe prep --config F` first (unlearn.dataset points "
                    "at the folder it writes)",
                    file.string());
  Pairs p;
  try {
    io::H5File f = io::H5File::open(file);
    LETHE_CHECK_INPUT(f.attr_string("format") == "lethe-pairs", "{}: not a lethe pairs file", file.string());
    const int64_t version = f.attr_int("format_version");
    LETHE_CHECK_INPUT(version >= 1 && version <= kPairsFormatVersion,
                      "{}: format_version {} (this lethe reads 1..{})", file.string(), version,
                      kPairsFormatVersion);
    p.source = f.attr_string("source");
    p.embedder = f.attr_string("embedder");
    p.forget_ids = get<int64_t>(f, "forget/ids", 1, torch::kLong);
    p.forget_tokens = get<int64_t>(f, "forget/tokens", 2, torch::kLong);
    p.neighbour_ids = get<int64_t>(f, "neighbours/ids", 2, torch::kLong);
    p.neighbour_distances = get<double>(f, "neighbours/distances", 2, torch::kDouble);
    p.neighbour_tokens = get<int64_t>(f, "neighbours/tokens", 2, torch::kLong);
    p.retain_ids = get<int64_t>(f, "retain/ids", 1, torch::kLong);
    p.config_yaml = f.read_string("config");
    const std::string rows = version >= 2 ? f.attr_string("rows") : "stored";
    const std::optional<RowTokens> kind = enum_from_name<RowTokens>(rows);
    LETHE_CHECK_INPUT(kind.has_value(), "{}: attribute rows = \"{}\", expected stored or reencoded",
                      file.string(), rows);
    p.rows = *kind;
    if (p.rows == RowTokens::kReencoded) {
      p.forget_input = {get<int64_t>(f, "forget/input_ids", 2, torch::kLong),
                        get<int64_t>(f, "forget/attention_mask", 2, torch::kLong)};
      p.neighbour_input = {get<int64_t>(f, "neighbours/input_ids", 2, torch::kLong),
                           get<int64_t>(f, "neighbours/attention_mask", 2, torch::kLong)};
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw_input("{}: cannot read the prepared dataset ({}); re-run lethe prep", file.string(), e.what());
  }
  const int64_t n = p.forget_ids.size(0);
  LETHE_CHECK_INPUT(n > 0, "{}: the forget set is empty", file.string());
  LETHE_CHECK_INPUT(p.forget_tokens.size(0) == n && p.neighbour_tokens.size(0) == n &&
                        p.neighbour_ids.size(0) == n &&
                        p.neighbour_distances.sizes() == p.neighbour_ids.sizes(),
                    "{}: forget and neighbour datasets disagree on the number of pairs", file.string());
  LETHE_CHECK_INPUT(p.forget_tokens.sizes() == p.neighbour_tokens.sizes(),
                    "{}: forget rows are {} tokens, neighbour rows {}", file.string(),
                    p.forget_tokens.size(1), p.neighbour_tokens.size(1));
  LETHE_CHECK_INPUT(!p.forget_tokens.equal(p.neighbour_tokens) || n == 0,
                    "{}: every neighbour row equals its target; the pairs would cancel", file.string());
  if (p.rows == RowTokens::kStored) {
    p.forget_input = data::stored_rows(p.forget_tokens);
    p.neighbour_input = data::stored_rows(p.neighbour_tokens);
    return p;
  }
  for (data::ModelRows* r : {&p.forget_input, &p.neighbour_input}) {
    const char* what = r == &p.forget_input ? "forget" : "neighbours";
    LETHE_CHECK_INPUT(r->ids.sizes() == p.forget_tokens.sizes() && r->mask.sizes() == r->ids.sizes(),
                      "{}: /{}/input_ids and attention_mask must be [{}, {}] like the tokens", file.string(),
                      what, n, p.forget_tokens.size(1));
    LETHE_CHECK_INPUT(((r->mask == 0) | (r->mask == 1)).all().item<bool>(),
                      "{}: /{}/attention_mask holds values other than 0 and 1", file.string(), what);
    if (r->mask.all().item<bool>()) r->mask = torch::Tensor();  // no padding: unmasked attention
  }
  return p;
}

}  // namespace lethe::prep
