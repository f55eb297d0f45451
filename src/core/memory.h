// Process-wide allocator tuning for libtorch on the CPU.
#pragma once

namespace lethe {

// glibc serves blocks above 32 MiB with mmap and returns them to the OS on free, so every large activation
// (a [B·T, V] logits tensor is ~320 MB at 125M scale) is page-faulted in afresh each step: measured ~25 % of
// a GPT-Neo-125M training step on this machine. This keeps freed memory in the heap instead (no mmap, no
// trimming below 2 GiB), so steady-state steps reuse pages. Call once, first thing in main. Set
// LETHE_MALLOC_DEFAULT=1 to keep glibc's behaviour (lower resident memory between steps, slower steps).
void retain_freed_memory();

}  // namespace lethe

namespace lethe {

// Hands the heap's free pages back to the OS (malloc_trim): the storage of a model built tensor by tensor and
// then copied into ZeRO's flat buffer is freed in scattered chunks that the buffers allocated next cannot
// reuse, so without this it stays resident for the whole run.
void release_free_memory();

// Resident set size of this process from /proc/self/status: now (VmRSS) and the peak so far (VmHWM), bytes.
long long current_rss_bytes();
long long peak_rss_bytes();

}  // namespace lethe
