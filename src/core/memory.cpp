#include "core/memory.h"

#include <malloc.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lethe {

void retain_freed_memory() {
  const char* opt_out = std::getenv("LETHE_MALLOC_DEFAULT");
  if (opt_out && std::strcmp(opt_out, "1") == 0) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

}  // namespace lethe

namespace lethe {
namespace {
long long status_kib(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  long long kib = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0) {
      kib = std::atoll(line + n);
      break;
    }
  std::fclose(f);
  return kib;
}
}  // namespace

void release_free_memory() {
  malloc_trim(0);
}

long long current_rss_bytes() {
  return status_kib("VmRSS:") * 1024;
}
long long peak_rss_bytes() {
  return status_kib("VmHWM:") * 1024;
}

}  // namespace lethe
