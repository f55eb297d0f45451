#include "test_util.h"

#include <cstring>
#include <random>
#include <stdexcept>

#include "model/safetensors.h"

#ifndef LETHE_SOURCE_DIR
#define LETHE_SOURCE_DIR "."
#endif
#ifndef LETHE_DEFAULT_FIXTURES
#define LETHE_DEFAULT_FIXTURES ""
#endif
#ifndef LETHE_DEFAULT_PYTHON
#define LETHE_DEFAULT_PYTHON ""
#endif

namespace lethe::test {
namespace fs = std::filesystem;

std::optional<fs::path> shared_data_dir() {
  const char* env = std::getenv("LETHE_SHARED_DATA");
  fs::path dir = env ? fs::path(env) : fs::path(LETHE_SOURCE_DIR) / ".." / "shared" / "data";
  if (!fs::is_directory(dir)) return std::nullopt;
  return fs::canonical(dir);
}

std::optional<fs::path> fixtures_dir() {
  const char* env = std::getenv("LETHE_FIXTURES");
  const fs::path dir = env ? env : LETHE_DEFAULT_FIXTURES;
  if (dir.empty() || !fs::is_directory(dir)) return std::nullopt;
  return dir;
}

std::optional<std::string> python() {
  const char* env = std::getenv("LETHE_PYTHON");
  const std::string py = env ? env : LETHE_DEFAULT_PYTHON;
  if (py.empty()) return std::nullopt;
  return py;
}

std::map<std::string, torch::Tensor> load_tensors(const fs::path& file) {
  using model::DType;
  auto st = model::SafetensorsFile::open(file);
  std::map<std::string, torch::Tensor> out;
  for (const auto& v : st.tensors()) {
    torch::ScalarType t;
    switch (v.dtype) {
      case DType::kF32:
        t = torch::kFloat;
        break;
      case DType::kBF16:
        t = torch::kBFloat16;
        break;
      case DType::kF16:
        t = torch::kHalf;
        break;
      case DType::kI64:
        t = torch::kLong;
        break;
      case DType::kI32:
        t = torch::kInt;
        break;
      case DType::kBool:
        t = torch::kBool;
        break;
      default:
        throw std::runtime_error("unsupported fixture dtype for " + v.name);
    }
    torch::Tensor x = torch::empty(v.shape, torch::TensorOptions().dtype(t));
    std::memcpy(x.data_ptr(), v.data, v.nbytes);
    out.emplace(v.name, x);
  }
  return out;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("lethe-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace lethe::test
