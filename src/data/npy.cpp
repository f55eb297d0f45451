#include "data/npy.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <regex>
#include <span>
#include <string>

#include "core/error.h"
#include "core/io.h"

namespace lethe::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct Header {
  char kind = 0;  // 'u' or 'i'
  int item = 0;   // bytes
  bool big_endian = false, fortran = false;
  std::vector<int64_t> shape;
};

Header parse_header(const std::string& h, const std::string& file) {
  Header out;
  std::smatch m;
  LETHE_CHECK_INPUT(std::regex_search(h, m, std::regex(R"('descr'\s*:\s*'([<>|=])([a-zA-Z])(\d+)')")),
                    "{}: npy header has no 'descr' dtype (header: {})", file, h);
  const std::string order = m[1], kind = m[2];
  out.item = m[3].length() == 1 ? m[3].str()[0] - '0' : 0;  // 1, 2, 4 or 8; anything longer is invalid
  LETHE_CHECK_INPUT(
      (kind == "u" || kind == "i") && (out.item == 1 || out.item == 2 || out.item == 4 || out.item == 8),
      "{}: dtype '{}{}{}' is not a token-id array; expected an integer dtype (uint16, int32, int64, ...)",
      file, order, kind, out.item);
  out.kind = kind[0];
  out.big_endian = order == ">";
  LETHE_CHECK_INPUT(std::regex_search(h, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")),
                    "{}: npy header has no 'fortran_order'", file);
  out.fortran = m[1] == "True";
  LETHE_CHECK_INPUT(std::regex_search(h, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")),
                    "{}: npy header has no 'shape'", file);
  const std::string dims = m[1];
  size_t pos = 0;
  while (pos < dims.size()) {
    const size_t comma = std::min(dims.find(',', pos), dims.size());
    std::string item = dims.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    pos = comma + 1;
    if (item.empty()) continue;  // the trailing comma of a 1-tuple
    int64_t d = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), d);
    LETHE_CHECK_INPUT(ec == std::errc{} && end == item.data() + item.size() && d >= 0,
                      "{}: shape entry '{}' is not a non-negative integer", file, item);
    out.shape.push_back(d);
  }
  LETHE_CHECK_INPUT(out.shape.size() == 1 || out.shape.size() == 2,
                    "{}: shape has {} dimensions; expected a 1-D or 2-D token array", file, out.shape.size());
  return out;
}

int64_t decode(const unsigned char* p, const Header& h) {
  uint64_t u = 0;
  for (int b = 0; b < h.item; ++b) {
    const int shift = h.big_endian ? (h.item - 1 - b) * 8 : b * 8;
    u |= static_cast<uint64_t>(p[b]) << shift;
  }
  if (h.kind == 'i' && h.item < 8 && (u >> (h.item * 8 - 1)) & 1) u |= ~uint64_t{0} << (h.item * 8);  // sign
  return static_cast<int64_t>(u);
}

}  // namespace

TokenArray read_npy(const std::filesystem::path& path) {
  const std::string file = path.string();
  const std::string bytes = read_text_file(path, "a NumPy .npy token array");
  LETHE_CHECK_INPUT(bytes.size() >= 10 && bytes.compare(0, 6, kMagic, 6) == 0,
                    "{}: not a .npy file (the magic \\x93NUMPY is missing)", file);
  const int major = static_cast<unsigned char>(bytes[6]);
  LETHE_CHECK_INPUT(major >= 1 && major <= 3, "{}: unsupported .npy format version {}", file, major);
  const size_t len_bytes = major == 1 ? 2 : 4;
  LETHE_CHECK_INPUT(bytes.size() >= 8 + len_bytes, "{}: truncated .npy header", file);
  size_t header_len = 0;
  for (size_t b = 0; b < len_bytes; ++b)
    header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + b])) << (8 * b);
  LETHE_CHECK_INPUT(header_len <= 65536,
                    "{}: .npy header of {} bytes is implausible (at most 64 KiB expected)", file, header_len);
  const size_t data_start = 8 + len_bytes + header_len;
  LETHE_CHECK_INPUT(data_start <= bytes.size(), "{}: .npy header length {} runs past the end of the file",
                    file, header_len);
  const Header h = parse_header(bytes.substr(8 + len_bytes, header_len), file);
  TokenArray a;
  a.rows = h.shape.size() == 2 ? h.shape[0] : 1;
  a.cols = h.shape.back();
  int64_t n64 = 0, bytes_needed = 0;
  LETHE_CHECK_INPUT(
      !__builtin_mul_overflow(a.rows, a.cols, &n64) && !__builtin_mul_overflow(n64, h.item, &bytes_needed),
      "{}: shape {}x{} overflows", file, a.rows, a.cols);
  const auto n = static_cast<size_t>(n64);
  LETHE_CHECK_INPUT(
      bytes.size() - data_start == static_cast<size_t>(bytes_needed),
      "{}: data is {} bytes but shape {}x{} of {}-byte items needs {} (truncated or wrong header)", file,
      bytes.size() - data_start, a.rows, a.cols, h.item, bytes_needed);
  a.values.resize(n);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + data_start);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.cols; ++c) {
      // Fortran order stores column by column.
      const int64_t src = h.fortran ? c * a.rows + r : r * a.cols + c;
      a.values[r * a.cols + c] = decode(p + src * h.item, h);
    }
  return a;
}

void write_npy(const std::filesystem::path& path, const TokenArray& a, bool as_uint16) {
  std::string header = "{'descr': '" + std::string(as_uint16 ? "<u2" : "<i8") +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(a.rows) + ", " +
                       std::to_string(a.cols) + "), }";
  // Pad so the data starts on a 64-byte boundary, newline-terminated (format version 1).
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  for (int64_t v : a.values) {
    const int item = as_uint16 ? 2 : 8;
    for (int b = 0; b < item; ++b) out += static_cast<char>((static_cast<uint64_t>(v) >> (8 * b)) & 0xff);
  }
  write_file_atomic(path, {std::as_bytes(std::span(out.data(), out.size()))});
}

}  // namespace lethe::data
