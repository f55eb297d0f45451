// Which device a rank computes on, and the facts about it that a log or `lethe info` shows.
//
// One GPU per rank: rank r of a machine takes visible GPU (node_rank % visible), where node_rank comes from
// the communicator (MPI_Comm_split_type(SHARED)), never from launcher variables that a batch script may have
// set for the whole job. Two ranks of one machine on one physical GPU are refused (NCCL would fail later
// with "Duplicate GPU detected"); LETHE_ALLOW_SHARED_GPU=1 allows it for tests that run NCCL over sockets
// with a distinct NCCL_HOSTID per process.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "comm/communicator.h"

namespace lethe::comm {

enum class DeviceRequest { kAuto, kCpu, kCuda };

struct GpuInfo {
  int index = 0;       // among the visible devices
  std::string name;    // "NVIDIA H100 80GB HBM3"
  std::string bus_id;  // "0000:1b:00.0"
  std::string uuid;    // 32 hex digits: the physical device, whatever CUDA_VISIBLE_DEVICES renumbers
  int64_t total_bytes = 0;
  int capability = 0;  // major * 10 + minor (90 = Hopper)
};

// Whether this binary has CUDA support (a CUDA libtorch and a toolkit at build time).
bool cuda_built();
// GPUs this process can see; 0 in a CPU-only build.
int cuda_device_count();
// Facts about visible GPU `index`. Requires cuda_built().
GpuInfo gpu_info(int index);

// The device for this rank (auto = cuda when a GPU is visible). For cuda it also makes that GPU current
// (cudaSetDevice) before anything else touches CUDA. Throws InputError with the fix when cuda is asked for
// and cannot be had.
torch::Device choose_device(DeviceRequest want, int node_rank);

// Collective over `host`: every rank learns every rank's host name and GPU; throws InputError on every rank
// when two ranks of one host hold the same physical GPU (unless LETHE_ALLOW_SHARED_GPU=1). Returns one
// line per rank, "rank R on HOST -> GPU i NAME (BUS)" or "rank R on HOST -> cpu", in rank order.
std::vector<std::string> check_placement(Communicator& host, const torch::Device& device);

// What the caching allocator of a GPU has handed out (allocated) and holds from the driver (reserved), in
// bytes, with their peaks since the last reset_memory_peaks. All zero on the CPU.
struct DeviceMemory {
  int64_t allocated = 0, allocated_peak = 0, reserved = 0, reserved_peak = 0;
};
DeviceMemory device_memory(torch::Device d);
void reset_memory_peaks(torch::Device d);

// Waits until the device has run everything queued on it (a no-op on the CPU): what a timing must do to
// measure the device rather than how fast the host queued work.
void synchronize(torch::Device d);

// `host` on device `d`: itself on the CPU; on a GPU copied from pinned memory without blocking the host
// (the caching host allocator keeps the staging buffer until the copy is done).
torch::Tensor to_device(const torch::Tensor& host, torch::Device d);

}  // namespace lethe::comm
