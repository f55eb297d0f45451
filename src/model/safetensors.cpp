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

// A short description of a JSON value for messages. Containers are never dumped: dump() recurses, and a
// hostile header can nest arrays deep enough to overflow the stack.
std::string describe(const json& v) {
  if (v.is_array()) return fmt::format("array of {} elements", v.size());
  if (v.is_object()) return fmt::format("object with {} keys", v.size());
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return fmt::format(
      "{} {}", v.is_number_integer() && !v.is_number_unsigned() ? "negative number" : v.type_name(), text);
}

struct Entry {
  TensorView view;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& file, const std::string& name, const json& v) {
  const auto bad = [&](std::string_view what) { throw_input("{}: tensor '{}': {}", file, name, what); };
  if (!v.is_object()) bad(fmt::format("header entry must be an object, found {}", describe(v)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) bad(fmt::format("header entry has no \"{}\" field", key));

  const json& jd = v["dtype"];
  if (!jd.is_string()) bad(fmt::format("\"dtype\" must be a string, found {}", describe(jd)));
  const auto dtype = parse_dtype(jd.get_ref<const std::string&>());
  if (!dtype)
    bad(fmt::format("unsupported dtype {}; expected one of F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL U16",
                    jd.dump()));

  const json& js = v["shape"];
  if (!js.is_array()) bad(fmt::format("\"shape\" must be an array of integers, found {}", describe(js)));
  std::vector<int64_t> shape;
  for (const json& d : js) {
    const auto ud = as_u64(d);
    if (!ud || *ud > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(fmt::format("\"shape\" dimensions must be non-negative integers, found {}", describe(d)));
    shape.push_back(static_cast<int64_t>(*ud));
  }

  const json& jo = v["data_offsets"];
  if (!jo.is_array() || jo.size() != 2)
    bad(fmt::format("\"data_offsets\" must be [begin, end], found {}", describe(jo)));
  const auto begin = as_u64(jo[0]), end = as_u64(jo[1]);
  if (!begin || !end)
    bad(fmt::format("\"data_offsets\" must be two non-negative integers, found [{}, {}]", describe(jo[0]),
                    describe(jo[1])));
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

// Reads a small text file (an index or config); InputError if it cannot be read.
std::string read_small_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw_input("cannot open '{}': {}", p.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string os_error(std::string_view what, const std::filesystem::path& p) {
  return fmt::format("{} '{}': {}", what, p.string(), std::strerror(errno));
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
  if (!root.is_object()) throw_input("{}: header must be a JSON object, found {}", fname, describe(root));

  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw_input("{}: __metadata__ must be an object of strings, found {}", fname, describe(value));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw_input("{}: __metadata__ value for '{}' must be a string, found {}", fname, mk, describe(mv));
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

void write_file_atomic(const std::filesystem::path& file,
                       const std::vector<std::span<const std::byte>>& pieces) {
  std::filesystem::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  std::filesystem::path tmp = file;
  tmp += fmt::format(".tmp-{}", ::getpid());

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(os_error("cannot create", tmp));
  const auto fail = [&](std::string_view what, const std::filesystem::path& p) {
    std::string msg = os_error(what, p);
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error(msg);
  };
  for (const auto& piece : pieces) {
    const std::byte* p = piece.data();
    size_t left = piece.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = EIO;  // no progress and no error code: report it as an I/O error
      if (n <= 0) fail("cannot write", tmp);
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) fail("cannot fsync", tmp);
  const int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail("cannot close", tmp);
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    fail(fmt::format("cannot rename '{}' to", tmp.string()), file);

  // The rename is only durable once the folder entry is on disk.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw std::runtime_error(os_error("cannot open folder", dir));
  const int sync_rc = ::fsync(dfd);
  const int sync_errno = errno;
  ::close(dfd);
  errno = sync_errno;
  if (sync_rc != 0) throw std::runtime_error(os_error("cannot fsync folder", dir));
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

namespace {

std::vector<std::string> folder_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view x) { return s.ends_with(x); });
}

constexpr std::string_view kExpected =
    "model.safetensors, or model.safetensors.index.json with the model-0000i-of-0000n.safetensors shards it "
    "names";

// No safetensors weights: say what is there instead, and how to convert a pickle checkpoint.
[[noreturn]] void refuse_folder(const std::filesystem::path& dir) {
  const auto names = folder_entries(dir);
  std::vector<std::string> pickles, others;
  for (const auto& n : names) {
    if (n == "pytorch_model.bin.index.json" || ends_with_any(n, {".bin", ".pt", ".pth", ".ckpt"}))
      pickles.push_back(n);
    else if (n.ends_with(".safetensors"))
      others.push_back(n);
  }
  const std::string d = dir.string();
  if (!pickles.empty())
    throw_input(
        "{}: holds a PyTorch pickle checkpoint ({}); lethe never unpickles (it can run arbitrary code) and "
        "reads only safetensors ({}). Convert it once with:\n  python -c \"from transformers import "
        "AutoModelForCausalLM as M; M.from_pretrained('{}').save_pretrained('{}-safetensors', "
        "safe_serialization=True)\"",
        d, fmt::join(pickles, ", "), kExpected, d, d);
  if (!others.empty())
    throw_input("{}: found {} but no model.safetensors or model.safetensors.index.json; expected {}", d,
                fmt::join(others, ", "), kExpected);
  throw_input("{}: no model weights found; expected {} (folder holds: {})", d, kExpected,
              names.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(names, ", ")));
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw_input("model folder '{}' {}; expected a Hugging Face checkpoint folder with config.json and {}", d,
                std::filesystem::exists(dir, ec) ? "is not a folder" : "does not exist", kExpected);

  SafetensorsCheckpoint ckpt;
  ckpt.dir_ = dir;
  const auto single = dir / "model.safetensors";
  const auto index_path = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(single, ec)) {  // transformers prefers the single file too
    ckpt.files_.push_back(SafetensorsFile::open(single));
    const auto& ts = ckpt.files_[0].tensors();
    for (size_t i = 0; i < ts.size(); ++i) ckpt.index_.emplace(ts[i].name, Location{0, i});
    return ckpt;
  }
  if (!std::filesystem::exists(index_path, ec)) refuse_folder(dir);

  const std::string ip = index_path.string();
  json index;
  try {
    index = json::parse(read_small_file(index_path));
  } catch (const json::exception& e) {
    throw_input("{}: not valid JSON ({})", ip, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw_input("{}: expected an object with a \"weight_map\" object of tensor name -> shard file", ip);

  std::map<std::string, size_t> shard_ids;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      throw_input("{}: weight_map['{}'] must be a shard file name, found {}", ip, name, describe(shard));
    const auto& s = shard.get_ref<const std::string&>();
    // Shards are plain names inside the folder; anything else could point outside it.
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos)
      throw_input("{}: weight_map['{}'] = '{}' is not a file name inside the folder", ip, name, s);
    auto [it, inserted] = shard_ids.emplace(s, ckpt.files_.size());
    if (inserted) {
      if (!std::filesystem::exists(dir / s, ec))
        throw_input("{}: shard '{}' (holding tensor '{}') does not exist in {}", ip, s, name, d);
      ckpt.files_.push_back(SafetensorsFile::open(dir / s));
    }
    const SafetensorsFile& f = ckpt.files_[it->second];
    const TensorView* t = f.find(name);
    if (t == nullptr)
      throw_input("{}: lists tensor '{}' in shard '{}', but that shard has no such tensor", ip, name, s);
    ckpt.index_.emplace(name, Location{it->second, static_cast<size_t>(t - f.tensors().data())});
  }
  if (ckpt.index_.empty()) throw_input("{}: weight_map is empty; expected the model's tensors", ip);
  return ckpt;
}

const TensorView* SafetensorsCheckpoint::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &files_[it->second.file].tensors()[it->second.tensor];
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, loc] : index_) out.push_back(name);
  return out;
}

const std::filesystem::path& SafetensorsCheckpoint::file_of(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw_input("{}: checkpoint has no tensor '{}'", dir_.string(), name);
  return files_[it->second.file].path();
}

}  // namespace lethe::model
