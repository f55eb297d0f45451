#include "comm/device.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>

#include <fmt/format.h>
#include <torch/cuda.h>

#include "core/error.h"

#if LETHE_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace lethe::comm {

bool cuda_built() {
  return LETHE_HAVE_CUDA;
}

int cuda_device_count() {
  return cuda_built() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

GpuInfo gpu_info(int index) {
  GpuInfo g;
  g.index = index;
#if LETHE_HAVE_CUDA
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(index));
  g.name = p->name;
  g.bus_id = fmt::format("{:04x}:{:02x}:{:02x}.0", p->pciDomainID, p->pciBusID, p->pciDeviceID);
  for (unsigned char c : p->uuid.bytes) g.uuid += fmt::format("{:02x}", c);
  g.total_bytes = static_cast<int64_t>(p->totalGlobalMem);
  g.capability = p->major * 10 + p->minor;
#else
  throw std::runtime_error("gpu_info: this lethe was built without CUDA");
#endif
  return g;
}

torch::Device choose_device(DeviceRequest want, int node_rank) {
  if (want == DeviceRequest::kCpu) return torch::kCPU;
  if (!cuda_built()) {
    if (want == DeviceRequest::kAuto) return torch::kCPU;
    throw_input(
        "runtime.device=cuda, but this lethe was built without CUDA (no CUDA libtorch or no CUDA toolkit "
        "at build time, or -DLETHE_WITH_CUDA=OFF); rebuild on a machine with /usr/local/cuda, or use "
        "--set runtime.device=cpu");
  }
  const int visible = cuda_device_count();
  if (visible == 0) {
    if (want == DeviceRequest::kAuto) return torch::kCPU;
    const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
    throw_input(
        "runtime.device=cuda, but no GPU is visible to this process (CUDA_VISIBLE_DEVICES={}); "
        "check nvidia-smi and the job's GPU request, or use --set runtime.device=cpu",
        cvd ? cvd : "unset");
  }
  const int index = node_rank % visible;
#if LETHE_HAVE_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#endif
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

std::vector<std::string> check_placement(Communicator& host, const torch::Device& device) {
  // Each rank's record: host name and GPU uuid, fixed-size so one all_gather carries them.
  constexpr int64_t kField = 64;
  std::array<char, 2 * kField> mine{};
  ::gethostname(mine.data(), kField - 1);
  std::string line;
  if (device.is_cuda()) {
    const GpuInfo g = gpu_info(device.index());
    std::strncpy(mine.data() + kField, g.uuid.c_str(), kField - 1);
    line = fmt::format("GPU {} {} ({}, {:.0f} GiB)", g.index, g.name, g.bus_id,
                       static_cast<double>(g.total_bytes) / (1 << 30));
  } else {
    line = "cpu";
  }
  const int n = host.size();
  torch::Tensor in = torch::from_blob(mine.data(), {2 * kField}, torch::kByte).clone();
  torch::Tensor all = torch::empty({n * 2 * kField}, torch::kByte);
  host.all_gather(in, all, std::vector<int64_t>(n, 2 * kField));
  // The lines themselves: a second gather of fixed-size text.
  constexpr int64_t kLine = 160;
  std::array<char, kLine> text{};
  std::strncpy(text.data(), line.c_str(), kLine - 1);
  torch::Tensor lines = torch::empty({n * kLine}, torch::kByte);
  host.all_gather(torch::from_blob(text.data(), {kLine}, torch::kByte).clone(), lines,
                  std::vector<int64_t>(n, kLine));

  const auto* rec = reinterpret_cast<const char*>(all.data_ptr<uint8_t>());
  const auto* txt = reinterpret_cast<const char*>(lines.data_ptr<uint8_t>());
  std::vector<std::string> out;
  std::map<std::pair<std::string, std::string>, int> holder;  // (host, uuid) -> first rank
  const bool shared_ok =
      std::getenv("LETHE_ALLOW_SHARED_GPU") && std::string(std::getenv("LETHE_ALLOW_SHARED_GPU")) == "1";
  for (int r = 0; r < n; ++r) {
    const std::string name(rec + r * 2 * kField), uuid(rec + r * 2 * kField + kField);
    out.push_back(fmt::format("rank {} on {} -> {}", r, name, std::string(txt + r * kLine)));
    if (uuid.empty()) continue;
    auto [it, fresh] = holder.emplace(std::make_pair(name, uuid), r);
    if (!fresh && !shared_ok)
      throw_input(
          "ranks {} and {} on {} would share one GPU ({}): lethe runs one GPU per rank. Start at most as "
          "many ranks per node as it has GPUs (mpirun -np / --ntasks-per-node, --gpus-per-task=1), or use "
          "--set runtime.device=cpu",
          it->second, r, name, out.back().substr(out.back().find("-> ") + 3));
  }
  return out;
}

DeviceMemory device_memory(torch::Device d) {
  DeviceMemory m;
#if LETHE_HAVE_CUDA
  if (!d.is_cuda()) return m;
  using c10::CachingAllocator::StatType;
  const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index());
  const auto all = static_cast<size_t>(StatType::AGGREGATE);
  m.allocated = s.allocated_bytes[all].current;
  m.allocated_peak = s.allocated_bytes[all].peak;
  m.reserved = s.reserved_bytes[all].current;
  m.reserved_peak = s.reserved_bytes[all].peak;
#endif
  return m;
}

void reset_memory_peaks(torch::Device d) {
#if LETHE_HAVE_CUDA
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
#endif
}

void synchronize(torch::Device d) {
#if LETHE_HAVE_CUDA
  if (d.is_cuda()) c10::cuda::device_synchronize();
#endif
}

torch::Tensor to_device(const torch::Tensor& host, torch::Device d) {
  if (host.device() == d) return host;
  if (!d.is_cuda() || !host.is_cpu()) return host.to(d);
  return host.pin_memory().to(d, /*non_blocking=*/true);
}

}  // namespace lethe::comm
