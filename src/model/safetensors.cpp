// Safetensors reader/writer. The reader trusts nothing in the file: every length and offset is checked
// against the mapping before a pointer is formed, with the same rules as the Rust `safetensors` crate
// (header <= 100 MB, offsets tile the data region exactly), so files we accept load in Python and vice versa.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io.h"

namespace lethe::model {
namespace {

using nlohmann::json;

// The Rust crate's MAX_HEADER_SIZE: a larger header is corrupt or hostile, not a real checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeInfo, 11> kDTypes{{{DType::kF32, "F32", 4},
                                             {DType::kF16, "F16", 2},
                                             {DType::kBF16, "BF16", 2},
                                             {DType::kF64, "F64", 8},
                                             {DType::kI64, "I64", 8},
                                             {DType::kI32, "I32", 4},
                                             {DType::kI16, "I16", 2},
                                             {DType::kI8, "I8", 1},
                                             {DType::kU8, "U8", 1},
                                             {DType::kBool, "BOOL", 1},
                                             {DType::kU16, "U16", 2}}};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes)
    if (i.dtype == dtype) return i;
  throw std::invalid_argument(fmt::format("invalid DType value {}", static_cast<int>(dtype)));
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& i : kDTypes)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

// product(shape) * element size, or nullopt on overflow.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return std::nullopt;
    n *= ud;
  }
  return n;
}

// A non-negative JSON integer. nlohmann stores non-negative literals as unsigned and negative ones as
// signed, so "negative" and "not an integer" can be told apart for the message.
std::optional<uint64_t> as_u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  return std::nullopt;
}

struct Entry {
  TensorView view;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& file, const std::string& name, const json& v) {
  const auto bad = [&](std::string_view what) { throw_input("{}: tensor '{}': {}", file, name, what); };
  if (!v.is_object()) bad(fmt::format("header entry must be an object, found {}", describe_json(v)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) bad(fmt::format("header entry has no \"{}\" field", key));

  const json& jd = v["dtype"];
  if (!jd.is_string()) bad(fmt::format("\"dtype\" must be a string, found {}", describe_json(jd)));
  const auto dtype = parse_dtype(jd.get_ref<const std::string&>());
  if (!dtype)
    bad(fmt::format("unsupported dtype {}; expected one of F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL U16",
                    jd.dump()));

  const json& js = v["shape"];
  if (!js.is_array()) bad(fmt::format("\"shape\" must be an array of integers, found {}", describe_json(js)));
  std::vector<int64_t> shape;
  for (const json& d : js) {
    const auto ud = as_u64(d);
    if (!ud || *ud > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(fmt::format("\"shape\" dimensions must be non-negative integers, found {}", describe_json(d)));
    shape.push_back(static_cast<int64_t>(*ud));
  }

  const json& jo = v["data_offsets"];
  if (!jo.is_array() || jo.size() != 2)
    bad(fmt::format("\"data_offsets\" must be [begin, end], found {}", describe_json(jo)));
  const auto begin = as_u64(jo[0]), end = as_u64(jo[1]);
  if (!begin || !end)
    bad(fmt::format("\"data_offsets\" must be two non-negative integers, found [{}, {}]",
                    describe_json(jo[0]), describe_json(jo[1])));
  if (*begin > *end) bad(fmt::format("\"data_offsets\" [{}, {}] has begin > end", *begin, *end));

  const auto expected = checked_nbytes(shape, info(*dtype).size);
  if (!expected) bad(fmt::format("shape [{}] is too large: its byte size overflows", fmt::join(shape, ", ")));
  if (*expected != *end - *begin)
    bad(fmt::format("shape [{}] of {} needs {} bytes but data_offsets [{}, {}] span {} bytes",
                    fmt::join(shape, ", "), jd.get_ref<const std::string&>(), *expected, *begin, *end,
                    *end - *begin));
  return Entry{TensorView{name, *dtype, std::move(shape), nullptr, static_cast<size_t>(*end - *begin)},
               *begin, *end};
}

}  // namespace

size_t dtype_size(DType dtype) {
  return info(dtype).size;
}
std::string_view dtype_name(DType dtype) {
  return info(dtype).name;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& file) {
  const std::string fname = file.string();
  SafetensorsFile out;
  out.path_ = file;
  {
    const int fd = ::open(fname.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_input("cannot open safetensors file '{}': {}", fname, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw_input("'{}' is not a readable regular file; expected a .safetensors file", fname);
    }
    out.map_size_ = static_cast<size_t>(st.st_size);
    if (out.map_size_ < 8) {
      ::close(fd);
      throw_input("{}: file is {} bytes; a safetensors file starts with an 8-byte header length", fname,
                  out.map_size_);
    }
    void* m = ::mmap(nullptr, out.map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int mmap_errno = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (m == MAP_FAILED) throw_input("cannot map '{}': {}", fname, std::strerror(mmap_errno));
    out.map_ = m;
  }
  // Weights are read in full right after opening; start readahead now. Advice only, so failure is harmless.
  ::madvise(out.map_, out.map_size_, MADV_WILLNEED);

  const auto* base = static_cast<const std::byte*>(out.map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | std::to_integer<uint64_t>(base[i]);
  if (header_len > kMaxHeaderBytes)
    throw_input("{}: header length {} exceeds the 100 MB limit; the file is corrupt or not safetensors",
                fname, header_len);
  if (header_len > out.map_size_ - 8)
    throw_input("{}: header length {} but only {} bytes follow the length field; the file is truncated",
                fname, header_len, out.map_size_ - 8);
  const auto* header = reinterpret_cast<const char*>(base + 8);
  const std::byte* data = base + 8 + header_len;
  const uint64_t data_size = out.map_size_ - 8 - header_len;

  json root;
  try {
    root = json::parse(header, header + header_len);
  } catch (const json::exception& e) {
    throw_input("{}: header is not valid JSON ({})", fname, e.what());
  }
  if (!root.is_object())
    throw_input("{}: header must be a JSON object, found {}", fname, describe_json(root));

  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw_input("{}: __metadata__ must be an object of strings, found {}", fname, describe_json(value));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw_input("{}: __metadata__ value for '{}' must be a string, found {}", fname, mk,
                      describe_json(mv));
        out.metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(fname, key, value));
    if (entries.back().end > data_size)
      throw_input(
          "{}: tensor '{}': data_offsets end {} lies beyond the {}-byte data region; the file is truncated",
          fname, key, entries.back().end, data_size);
  }

  // Offsets must tile [0, data_size) exactly, as the Rust crate requires: no overlap, no gap, no tail.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < cursor)
      throw_input("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' which ends at {}", fname,
                  e.view.name, e.begin, e.end, *prev, cursor);
    if (e.begin > cursor)
      throw_input(
          "{}: tensor '{}': data_offsets begin {} leaves bytes [{}, {}) of the data region unused; "
          "tensors must cover it contiguously",
          fname, e.view.name, e.begin, cursor, e.begin);
    cursor = e.end;
    prev = &e.view.name;
  }
  if (cursor != data_size)
    throw_input("{}: tensors cover {} bytes but the data region has {} bytes (trailing garbage)", fname,
                cursor, data_size);

  out.tensors_.reserve(entries.size());
  for (Entry& e : entries) {
    e.view.data = data + e.begin;
    out.index_.emplace(e.view.name, out.tensors_.size());
    out.tensors_.push_back(std::move(e.view));
  }
  return out;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      map_size_(std::exchange(other.map_size_, 0)),
      tensors_(std::move(other.tensors_)),
      index_(std::move(other.index_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  unmap();
}

void SafetensorsFile::unmap() noexcept {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void write_safetensors(const std::filesystem::path& file, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps insertion order, so the header lists tensors in layout order like the Python package.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorRef& t : tensors) {
    const auto bad = [&](std::string_view what) {
      throw std::invalid_argument(
          fmt::format("write_safetensors '{}': tensor '{}': {}", file.string(), t.name, what));
    };
    if (t.name == "__metadata__" || header.contains(t.name)) bad("duplicate or reserved tensor name");
    if (std::any_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d < 0; }))
      bad("negative dimension");
    const auto expected = checked_nbytes(t.shape, dtype_size(t.dtype));
    if (!expected || *expected != t.nbytes)
      bad(fmt::format("nbytes {} does not match shape [{}] of {}", t.nbytes, fmt::join(t.shape, ", "),
                      dtype_name(t.dtype)));
    if (t.data == nullptr && t.nbytes > 0) bad("null data");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw std::invalid_argument(fmt::format("write_safetensors '{}': {}", file.string(), e.what()));
  }
  // The Python package pads with spaces so the data region starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::array<std::byte, 8> len{};
  for (size_t i = 0; i < 8; ++i) len[i] = static_cast<std::byte>((text.size() >> (8 * i)) & 0xff);

  std::vector<std::span<const std::byte>> pieces{len, std::as_bytes(std::span(text))};
  for (const TensorRef& t : tensors)
    if (t.nbytes > 0) pieces.emplace_back(static_cast<const std::byte*>(t.data), t.nbytes);
  write_file_atomic(file, pieces);
}

}  // namespace lethe::model
