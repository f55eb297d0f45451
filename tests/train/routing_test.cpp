// Which communicator carries what. A training run gets two: `host` (MPI: control flow and scalars) and
// `device` (NCCL on GPUs: the engine's buckets). MPI cannot read CUDA memory and NCCL cannot read host
// memory, so a collective on the wrong one fails only on a GPU machine. Here both are recording fakes around
// groups of one, and a whole `lethe train` run — steps, a checkpoint, a resume from it — plus unlearning
// steps must keep them apart: the device communicator sees only floating-point model memory (parameters,
// gradients, the gradient norm) on the model's device; the host communicator only host tensors of control
// values (int64 flags and counts, bytes of paths, fp64 sums) and never the model's parameter or gradient
// dtype.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "comm/local.h"
#include "comm/world.h"
#include "core/config.h"
#include "data/npy.h"
#include "model/gpt_neo.h"
#include "test_util.h"
#include "train/trainer.h"
#include "unlearn/objective.h"
#include "zero/engine.h"

namespace lethe {
namespace {

enum class Role { kHost, kDevice };

// Forwards to a group of one and checks every tensor handed in against its role.
class Recording : public comm::Communicator {
 public:
  Recording(Role role, torch::Device where) : inner_(comm::make_self()), role_(role), where_(where) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return role_ == Role::kHost ? "host" : "device"; }
  void barrier() override { inner_->barrier(); }
  std::unique_ptr<comm::Work> all_reduce_async(torch::Tensor t, comm::ReduceOp op) override {
    check(t, "all_reduce");
    return inner_->all_reduce_async(t, op);
  }
  std::unique_ptr<comm::Work> broadcast_async(torch::Tensor t, int root) override {
    check(t, "broadcast");
    return inner_->broadcast_async(t, root);
  }
  std::unique_ptr<comm::Work> reduce_scatter_async(torch::Tensor in, torch::Tensor out,
                                                   std::vector<int64_t> counts) override {
    check(in, "reduce_scatter");
    check(out, "reduce_scatter");
    return inner_->reduce_scatter_async(in, out, counts);
  }
  std::unique_ptr<comm::Work> all_gather_async(torch::Tensor in, torch::Tensor out,
                                               std::vector<int64_t> counts) override {
    check(in, "all_gather");
    check(out, "all_gather");
    return inner_->all_gather_async(in, out, counts);
  }
  [[noreturn]] void abort(const std::string& message, int code) override {
    throw std::runtime_error(message);
  }

  int64_t calls = 0;
  std::vector<std::string> violations;

 private:
  void check(const torch::Tensor& t, const char* op) {
    ++calls;
    const auto s = t.scalar_type();
    const bool model_memory = s == torch::kFloat || s == torch::kBFloat16 || s == torch::kHalf;
    const bool ok = role_ == Role::kHost ? t.is_cpu() && !model_memory
                                         : t.device() == where_ && (model_memory || s == torch::kDouble);
    if (!ok)
      violations.push_back(fmt::format("{} communicator got {} {} on {} ({} elements)",
                                       role_ == Role::kHost ? "host" : "device", op, c10::toString(s),
                                       t.device().str(), t.numel()));
  }
  std::unique_ptr<comm::Communicator> inner_;
  Role role_;
  torch::Device where_;
};

Config tiny_train_config(const std::filesystem::path& dir, int stage) {
  data::TokenArray a{24, 10, {}};
  torch::manual_seed(2);
  const torch::Tensor t = torch::randint(0, 64, {24, 10}, torch::kLong);
  a.values.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  data::write_npy(dir / "rows.npy", a);
  return load_config(
      std::nullopt,
      {"model.preset=tiny", "model.vocab_size=64", "model.bos_token_id=63", "model.eos_token_id=63",
       "model.max_position_embeddings=16", "data.train_path=" + (dir / "rows.npy").string(), "train.steps=4",
       "train.global_batch_size=4", "train.micro_batch_size=2", "train.lr=1e-3", "checkpoint.every=2",
       "run.output_dir=" + dir.string(), "run.name=routing", "zero.bucket_numel=4096",
       fmt::format("zero.stage={}", stage), "runtime.device=cpu"});
}

TEST(Routing, TrainCheckpointAndResumeKeepHostAndDeviceApart) {
  for (int stage : {0, 1, 2}) {
    test::TempDir dir;
    Recording host(Role::kHost, torch::kCPU), device(Role::kDevice, torch::kCPU);
    Config cfg = tiny_train_config(dir.path(), stage);
    train::run_training(cfg, {host, device, torch::kCPU});
    cfg.train.steps = 6;  // resume from step 4's checkpoint
    cfg.checkpoint.resume = "auto";
    const train::TrainOutcome out = train::run_training(cfg, {host, device, torch::kCPU});
    EXPECT_EQ(out.steps_done, 6);
    EXPECT_GT(host.calls, 0);
    EXPECT_GT(device.calls, 0);
    for (const auto& v : host.violations) ADD_FAILURE() << "ZeRO-" << stage << ": " << v;
    for (const auto& v : device.violations) ADD_FAILURE() << "ZeRO-" << stage << ": " << v;
  }
}

TEST(Routing, UnlearningStepsKeepHostAndDeviceApart) {
  // The unlearning step as lethe unlearn runs it: counts agreed on the host, terms and the update on the
  // device communicator, the step's sums read once and reduced on the host.
  Recording host(Role::kHost, torch::kCPU), device(Role::kDevice, torch::kCPU);
  model::GptNeo m(test::small_gpt_neo(64, 16, 32)), ref(test::small_gpt_neo(64, 16, 32));
  m->reset_parameters(1);
  ref->reset_parameters(1);
  zero::EngineOptions eo;
  eo.stage = 2;
  eo.bucket_numel = 2048;
  zero::ZeroEngine engine(*m, device, eo);
  torch::manual_seed(9);
  const torch::Tensor forget = torch::randint(1, 64, {2, 12}), neighbour = torch::randint(1, 64, {2, 12});
  for (int step = 0; step < 2; ++step) {
    const unlearn::Counts local = unlearn::count_labels(forget, neighbour, 0);
    torch::Tensor g = torch::tensor(
        {local.forget_tokens, local.neighbour_tokens, local.forget_as_neighbour_tokens, local.positions},
        torch::kDouble);
    host.all_reduce(g);
    const unlearn::Counts global{g[0].item<double>(), g[1].item<double>(), g[2].item<double>(),
                                 g[3].item<double>()};
    const unlearn::Terms t =
        unlearn::compute_terms(unlearn::Method::kIcu, {}, m, &ref, forget, neighbour, 0, global);
    engine.backward(t.loss);
    engine.step(1e-3);
    torch::Tensor sums = t.sums().cpu();
    host.all_reduce(sums);
    host.all_reduce_int(0, comm::ReduceOp::kMax);  // the stop flag
  }
  for (const auto& v : host.violations) ADD_FAILURE() << v;
  for (const auto& v : device.violations) ADD_FAILURE() << v;
  EXPECT_GT(device.calls, 0);
}

}  // namespace
}  // namespace lethe
