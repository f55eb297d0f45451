// Which communicator carries what. A training run gets two: `host` (MPI: control flow and scalars) and
// `device` (NCCL on GPUs: the engine's buckets). MPI cannot read CUDA memory and NCCL cannot read host
// memory, so a collective on the wrong one fails only on a GPU machine. Here both are recording fakes around
// groups of one, and whole `lethe train` and `lethe unlearn` runs — steps, validation, utility evaluation,
// checkpoints, a resume from them — must keep them apart: the device communicator sees only floating-point
// model memory (parameters, gradients, the gradient norm) on the model's device; the host communicator only
// host tensors of control values (int64 flags and counts, bytes of paths, fp64 sums) and never the model's
// parameter or gradient dtype.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "comm/local.h"
#include "comm/world.h"
#include "config/config.h"
#include "core/io.h"
#include "data/npy.h"
#include "model/causal_lm.h"
#include "model/hf_checkpoint.h"
#include "prep/pairs.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "train/trainer.h"
#include "train/unlearner.h"

namespace lethe {
namespace {
namespace fs = std::filesystem;

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
  return load_config(std::nullopt,
                     {"model.preset=tiny", "model.gpt_neo.vocab_size=64", "model.gpt_neo.bos_token_id=63",
                      "model.gpt_neo.eos_token_id=63", "model.gpt_neo.max_position_embeddings=16",
                      "data.train_path=" + (dir / "rows.npy").string(), "train.steps=4",
                      "train.global_batch_size=4", "train.micro_batch_size=2", "optimizer.lr=1e-3",
                      "checkpoint.every=2", "run.output_dir=" + dir.string(), "run.name=routing",
                      "zero.bucket_numel=4096", fmt::format("zero.stage={}", stage), "runtime.device=cpu"});
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

// A whole `lethe unlearn` run — validation (EL, MA, beam generation, BLEU), the utility suite before,
// during and after, unlearning steps, checkpoints — then a resume from its last checkpoint, on a tiny model
// with the GPT-2 vocabulary (the tokenizer decodes its generations).
TEST(Routing, UnlearnValidateCheckpointAndResumeKeepHostAndDeviceApart) {
  const std::optional<fs::path> shared = test::shared_data_dir();
  if (!shared || !fs::exists(*shared / "gpt2_tokenizer" / "encoder.json"))
    GTEST_SKIP() << "shared data not found; set LETHE_SHARED_DATA to the shared data directory";
  const text::Tokenizer tok = text::Tokenizer::from_dir(*shared / "gpt2_tokenizer");
  test::TempDir dir;
  model::GptNeoConfig arch = test::small_gpt_neo(50257, 16, 64);
  arch.eos_token_id = arch.bos_token_id = 50256;
  model::CausalLm init = model::make_causal_lm(arch);
  init->reset_parameters(3);
  model::save_hf_model(init, dir.path() / "init");

  torch::manual_seed(4);
  prep::Pairs p;
  p.forget_ids = torch::arange(4, torch::kLong);
  p.forget_tokens = torch::randint(0, 50256, {4, 24}, torch::kLong);
  p.neighbour_ids = torch::arange(4, 8, torch::kLong).unsqueeze(1);
  p.neighbour_distances = torch::ones({4, 1}, torch::kDouble);
  p.neighbour_tokens = torch::randint(0, 50256, {4, 24}, torch::kLong);
  p.retain_ids = torch::arange(4, 8, torch::kLong);
  p.source = "random";
  p.embedder = "none";
  prep::write_pairs(dir.path() / "pairs", p);
  const std::string suite = fmt::format(
      "window: 64\nppl_window: 64\nmax_new_tokens: 4\nbatch_size: 2\n"
      "data_dir: {}\ntasks:\n"
      "  - {{name: copa, format: copa_mosaic, "
      "file: downstream/copa_validation_llmfoundry.jsonl, group: cls}}\n"
      "  - {{name: wikitext, format: text, file: icu/validation_data/wikitext.csv, "
      "column: Wikitext}}\n",
      shared->string());
  write_file_atomic(dir.path() / "suite.yaml", {std::as_bytes(std::span(suite.data(), suite.size()))});

  for (int stage : {1, 2}) {
    Recording host(Role::kHost, torch::kCPU), device(Role::kDevice, torch::kCPU);
    Config cfg = load_config(std::nullopt, {"model.path=" + (dir.path() / "init").string(),
                                            "unlearn.dataset=" + (dir.path() / "pairs").string(),
                                            "unlearn.prefix_begin=4",
                                            "unlearn.suffix_begin=12",
                                            "unlearn.new_tokens=12",
                                            "unlearn.batch_size=2",
                                            "unlearn.val_batch_size=2",
                                            "unlearn.max_epochs=2",
                                            "optimizer.lr=1e-3",
                                            "unlearn.acc=0",
                                            "unlearn.bleu=0",
                                            "unlearn.empty_batch=step",
                                            "checkpoint.every=1",
                                            "utility.suite=" + (dir.path() / "suite.yaml").string(),
                                            "utility.limit=2",
                                            "utility.at_start=true",
                                            "utility.every=1",
                                            "utility.at_end=true",
                                            "run.output_dir=" + dir.path().string(),
                                            fmt::format("run.name=unlearn{}", stage),
                                            "zero.bucket_numel=4096",
                                            fmt::format("zero.stage={}", stage),
                                            "runtime.device=cpu"});
    const train::UnlearnOutcome first = train::run_unlearning(cfg, {host, device, torch::kCPU}, tok);
    EXPECT_EQ(first.epochs, 2);
    // Resume from the first epoch's checkpoint, as if the job had been killed during the second.
    const fs::path run = dir.path() / cfg.run.name;
    fs::remove_all(run / "checkpoints" / "step-00000004");
    cfg.checkpoint.resume = "auto";
    const train::UnlearnOutcome second = train::run_unlearning(cfg, {host, device, torch::kCPU}, tok);
    EXPECT_EQ(second.epochs, 2);
    EXPECT_GT(host.calls, 0);
    EXPECT_GT(device.calls, 0);
    for (const auto& v : host.violations) ADD_FAILURE() << "ZeRO-" << stage << ": " << v;
    for (const auto& v : device.violations) ADD_FAILURE() << "ZeRO-" << stage << ": " << v;
  }
}

}  // namespace
}  // namespace lethe
