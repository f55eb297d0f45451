#include "core/memory.h"

#include <malloc.h>

#include <climits>
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
