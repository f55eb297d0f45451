// NumPy .npy token arrays (format versions 1-3): little-endian or byte-order-free integer dtypes (u1, u2,
// i2, u4, i4, u8, i8), C or Fortran order, up to 2 dimensions. Everything is validated against the file:
// magic, header, dtype, shape, and that the data is exactly as long as the header says. Object arrays
// (which would need unpickling) are refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace lethe::data {

struct TokenArray {
  int64_t rows = 0, cols = 0;   // a 1-D file is one row
  std::vector<int64_t> values;  // row-major [rows, cols]
  const int64_t* row(int64_t r) const { return values.data() + r * cols; }
};

// Throws InputError naming the file and what is wrong.
TokenArray read_npy(const std::filesystem::path& path);

// Writes a C-order int64 (or uint16 when every value fits) .npy atomically; for tests and `prep`.
void write_npy(const std::filesystem::path& path, const TokenArray& a, bool as_uint16 = false);

}  // namespace lethe::data
