// The job as one rank sees it: two communicators and the device they serve.
//
//   host     MPI (or a group of one): control flow and scalars — stop flags, counts, loss sums, checkpoint
//            agreement, resume broadcasts, metric gathers. CPU tensors only.
//   device   the engine's parameter and gradient buckets, on `device`: NCCL when ranks compute on GPUs,
//            otherwise the host communicator itself (MPI moves CPU tensors) or, alone, a group of one.
//
// Only zero::ZeroEngine talks to `device`; everything else gets `host`. Keeping the two apart is what lets
// MPI see only host memory and NCCL only device memory (tests/train/routing_test.cpp checks it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/device.h"

namespace lethe::comm {

// Non-owning view handed to training code.
struct Comms {
  Communicator& host;
  Communicator& device;
  torch::Device where = torch::kCPU;
};

struct World {
  std::unique_ptr<Communicator> host, device_owned;  // device_owned empty when device == host
  torch::Device device = torch::kCPU;
  std::vector<std::string> placement;  // "rank R on HOST -> GPU …" per rank (rank 0 logs it)

  Communicator& device_comm() const { return device_owned ? *device_owned : *host; }
  Comms comms() const { return {*host, device_comm(), device}; }
};

// Completes `w`, whose host communicator is already made (make_host_world()): picks this rank's device
// (DeviceRequest, node rank), checks that no two ranks share a GPU, and on GPUs creates and warms the NCCL
// communicator before any model is loaded, so a broken fabric fails in seconds rather than after the load.
// Collective over w.host; throws (InputError for a bad request) with w.host intact.
void attach_device(World& w, DeviceRequest want);

}  // namespace lethe::comm
