// Hugging Face safetensors checkpoints in plain C++ (no torch): a bounds-checked, memory-mapped reader,
// an atomic writer, and checkpoint-folder discovery (single file or sharded index).
//
// Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes of JSON
// header {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}, then the
// data region; offsets are relative to the data region and must tile it exactly. Every malformed input is
// reported as lethe::InputError naming the file and the offending tensor/field, never as UB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::model {

// Element types lethe understands; the comment gives the safetensors spelling.
enum class DType {
  kF32,   // F32
  kF16,   // F16
  kBF16,  // BF16
  kF64,   // F64
  kI64,   // I64
  kI32,   // I32
  kI16,   // I16
  kI8,    // I8
  kU8,    // U8
  kBool,  // BOOL (one byte per element)
  kU16,   // U16
};

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);

// A tensor inside a mapped file. `data` points into the mapping (valid while the owning SafetensorsFile
// lives) and is NOT necessarily aligned to the element size: copy with memcpy, do not reinterpret_cast.
// Data is little-endian, row-major, contiguous.
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // empty = 0-d scalar
  const std::byte* data;
  size_t nbytes;
};

// One read-only .safetensors file, mapped with mmap(PROT_READ, MAP_PRIVATE). Move-only; moving keeps the
// mapping, so TensorView pointers stay valid.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& file);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const TensorView* find(std::string_view name) const;  // nullptr if absent
  // In file (data offset) order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  void unmap() noexcept;

  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// A Hugging Face checkpoint folder: `model.safetensors`, or `model.safetensors.index.json` plus the shards
// its weight_map names. As in transformers, a single model.safetensors wins when both exist, and with an
// index only the tensors listed in weight_map are visible. Pickle checkpoints (*.bin, *.pt) are refused,
// never read.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open_dir(const std::filesystem::path& dir);

  const TensorView* find(std::string_view name) const;  // nullptr if absent
  std::vector<std::string> names() const;               // sorted
  // The file holding `name`, for messages. Throws InputError if the tensor is not in the checkpoint.
  const std::filesystem::path& file_of(std::string_view name) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Location {
    size_t file;
    size_t tensor;
  };
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Location, std::less<>> index_;
};

// A tensor to write; `data` may be null when nbytes == 0.
struct TensorRef {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes a .safetensors file byte-compatible with the Python package: compact JSON header with
// `__metadata__` first (omitted when `metadata` is empty), tensors laid out in the order given, header padded
// with spaces to a multiple of 8. Atomic (see lethe::write_file_atomic in core/io.h). Inconsistent TensorRefs
// (nbytes not matching shape, duplicate names) are programming errors: std::invalid_argument. I/O failures:
// std::runtime_error.
void write_safetensors(const std::filesystem::path& file, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace lethe::model
