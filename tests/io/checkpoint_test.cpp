// Checkpoints on the in-process communicator: a state saved by 2 ranks is re-sliced exactly onto 1 and 3
// ranks; the checkpoint folder has the documented shape; metrics series survive a resume consistently.
#include "io/checkpoint.h"

#include <filesystem>
#include <mutex>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "comm/local.h"
#include "core/error.h"
#include "io/hdf5.h"
#include "io/metrics.h"
#include "model/causal_lm.h"
#include "test_util.h"

namespace lethe::io {
namespace {
namespace fs = std::filesystem;

model::GptNeoConfig small() {
  return test::small_gpt_neo(50, 8, 16);
}

// Global optimizer state [padded] x 3, assembled from every rank's owned slice.
struct Global {
  torch::Tensor master, m, v, params;
};

void train_and_save(const fs::path& root, Global& g) {
  std::mutex mu;
  std::vector<torch::Tensor> batches;  // drawn here: the global generator is not thread-safe to seed
  for (int s = 0; s < 3; ++s) {
    torch::manual_seed(s);
    batches.push_back(torch::randint(0, 50, {2, 6}, torch::kLong));
  }
  comm::run_local(2, [&](comm::Communicator& c) {
    model::CausalLm m = model::make_causal_lm(small());
    m->reset_parameters(1);
    zero::EngineOptions o;
    o.stage = 2;
    o.bucket_numel = 100;
    zero::ZeroEngine e(*m, c, o);
    for (int s = 0; s < 3; ++s) {
      const torch::Tensor& ids = batches[s];
      e.backward(model::causal_lm_loss(m->forward(ids).logits, ids) / 2);
      e.step(1e-2);
    }
    CheckpointContent content{
        {3, {0, 3}}, "train: {}\n", small(), {{"flags", torch::tensor({1, 0, 1}, torch::kLong)}}};
    save_checkpoint(root, content, e, /*keep_last=*/1, e.comm());
    std::lock_guard lock(mu);
    if (!g.master.defined()) {
      const int64_t n = e.layout().padded_numel();
      g = {torch::zeros({n}), torch::zeros({n}), torch::zeros({n}), e.flat_parameters().clone()};
    }
    const zero::Span s = e.owned();
    g.master.narrow(0, s.begin, s.size()).copy_(e.master());
    g.m.narrow(0, s.begin, s.size()).copy_(e.exp_avg());
    g.v.narrow(0, s.begin, s.size()).copy_(e.exp_avg_sq());
  });
}

TEST(Checkpoint, ReslicesOntoAnyWorldSize) {
  at::set_num_threads(1);
  test::TempDir tmp;
  Global g;
  train_and_save(tmp.path(), g);
  const auto dir = find_latest_checkpoint(tmp.path());
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->filename(), "step-00000003");
  for (const char* f : {"meta.h5", "optim-00000.h5", "optim-00001.h5", "COMPLETE"})
    EXPECT_TRUE(fs::exists(*dir / f)) << f;
  for (int world : {1, 2, 3}) {
    comm::run_local(world, [&](comm::Communicator& c) {
      model::CausalLm m = model::make_causal_lm(small());
      m->reset_parameters(99);  // different weights: the checkpoint must replace them
      zero::EngineOptions o;
      o.stage = world == 1 ? 0 : 1;
      zero::ZeroEngine e(*m, c, o);
      const LoadReport r = load_checkpoint(*dir, e, small());
      EXPECT_EQ(r.saved_world_size, 2);
      EXPECT_EQ(r.content.progress.step, 3);
      EXPECT_EQ(r.content.progress.sampler.batch, 3);
      EXPECT_TRUE(r.content.method.at("flags").equal(torch::tensor({1, 0, 1}, torch::kLong)));
      EXPECT_EQ(e.adam_steps(), 3);
      const zero::Span s = e.owned().intersect({0, e.layout().numel()});
      auto mine = [&](const torch::Tensor& t) { return t.narrow(0, s.begin - e.owned().begin, s.size()); };
      EXPECT_TRUE(mine(e.master()).equal(g.master.narrow(0, s.begin, s.size()))) << world;
      EXPECT_TRUE(mine(e.exp_avg()).equal(g.m.narrow(0, s.begin, s.size()))) << world;
      EXPECT_TRUE(mine(e.exp_avg_sq()).equal(g.v.narrow(0, s.begin, s.size()))) << world;
      const int64_t n = e.layout().numel();
      EXPECT_TRUE(e.flat_parameters().narrow(0, 0, n).equal(g.params.narrow(0, 0, n))) << world;
    });
  }
  // Another architecture is refused, naming the field.
  model::GptNeoConfig other = small();
  other.window_size = 2;
  comm::run_local(1, [&](comm::Communicator& c) {
    model::CausalLm m = model::make_causal_lm(other);
    zero::ZeroEngine e(*m, c, {});
    test::expect_input_error([&] { load_checkpoint(*dir, e, other); }, {"different model", "window_size"});
  });
}

TEST(Metrics, ResumeDropsRowsAfterTheCheckpoint) {
  test::TempDir tmp;
  const fs::path file = tmp.path() / "metrics.h5";
  {
    MetricsWriter w(file, "train", {"loss"}, std::nullopt, /*flush_seconds=*/0);
    for (int s = 1; s <= 8; ++s) w.append(s, {10.0 - s});
  }
  {
    // A second group in the same file; its fresh start leaves /train alone.
    MetricsWriter e(file, "epoch", {"el"}, std::nullopt, 0);
    e.append(0, {0.9});
  }
  {
    MetricsWriter w(file, "train", {"loss"}, /*keep_through=*/5, 0);
    w.append(6, {0.5});
  }
  write_table(file, "samples/epoch-0000", {{"el", {0.25, 0.5}}}, {{"candidates", "[\"a\",\"b\"]"}});
  write_table(file, "samples/epoch-0000", {{"el", {0.75}}}, {});  // replaced, not appended
  const H5File f = H5File::open(file);
  EXPECT_EQ(f.read_series_int("train/step"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.series_length("train/loss"), 6u);
  EXPECT_EQ(f.read_series_int("epoch/step"), (std::vector<int64_t>{0}));
  EXPECT_EQ(f.read<double>("samples/epoch-0000/el"), (std::vector<double>{0.75}));
  EXPECT_FALSE(f.exists("samples/epoch-0000/candidates"));
}

}  // namespace
}  // namespace lethe::io
