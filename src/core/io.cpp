#include "core/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"

namespace lethe {

std::string os_error_message(std::string_view what, const std::filesystem::path& p) {
  return fmt::format("{} '{}': {}", what, p.string(), std::strerror(errno));
}

std::string read_text_file(const std::filesystem::path& path, std::string_view expected) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input("cannot open '{}': {}; expected {}", path.string(), std::strerror(errno), expected);
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw_input("error while reading '{}'", path.string());
  return std::move(buf).str();
}

std::string describe_json(const nlohmann::json& v) {
  if (v.is_array()) return fmt::format("array of {} elements", v.size());
  if (v.is_object()) return fmt::format("object with {} keys", v.size());
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return fmt::format(
      "{} {}", v.is_number_integer() && !v.is_number_unsigned() ? "negative number" : v.type_name(), text);
}

void write_file_atomic(const std::filesystem::path& file,
                       const std::vector<std::span<const std::byte>>& pieces) {
  std::filesystem::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  std::filesystem::path tmp = file;
  tmp += fmt::format(".tmp-{}", ::getpid());

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(os_error_message("cannot create", tmp));
  const auto fail = [&](std::string_view what, const std::filesystem::path& p) {
    std::string msg = os_error_message(what, p);
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
  if (dfd < 0) throw std::runtime_error(os_error_message("cannot open folder", dir));
  const int sync_rc = ::fsync(dfd);
  const int sync_errno = errno;
  ::close(dfd);
  errno = sync_errno;
  if (sync_rc != 0) throw std::runtime_error(os_error_message("cannot fsync folder", dir));
}

}  // namespace lethe
