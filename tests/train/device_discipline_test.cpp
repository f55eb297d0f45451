// Host syncs in the hot paths, counted. Every op that makes the host wait for the device's values — a scalar
// read (.item(): aten::_local_scalar_dense), a data-dependent shape (aten::nonzero), a tensor's truth value
// (aten::is_nonzero), aten::equal — is seen through a thread-local RecordFunction callback, on the CPU as on
// a GPU. A forward, a backward, each unlearning objective, prefill and decoding steps must do none; an
// optimizer step at most 2 (the gradient norm the clipping and the divergence check read); greedy decoding
// one per 8 tokens.
#include <set>
#include <string>

#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include "comm/local.h"
#include "model/causal_lm.h"
#include "model/generate.h"
#include "model/lm_loss.h"
#include "test_util.h"
#include "unlearn/objective.h"
#include "zero/engine.h"

namespace lethe {
namespace {

// Counts host-sync ops on this thread while alive.
class SyncCounter {
 public:
  SyncCounter() {
    handle_ =
        at::addThreadLocalCallback(at::RecordFunctionCallback(&SyncCounter::on_start).needsInputs(false));
    count() = 0;
    names().clear();
  }
  ~SyncCounter() { at::removeCallback(handle_); }
  int64_t syncs() const { return count(); }
  std::string seen() const {
    std::string s;
    for (const auto& n : names()) s += n + " ";
    return s;
  }

 private:
  static int64_t& count() {
    thread_local int64_t c = 0;
    return c;
  }
  static std::multiset<std::string>& names() {
    thread_local std::multiset<std::string> n;
    return n;
  }
  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    static const std::set<std::string> kSyncing = {"aten::_local_scalar_dense", "aten::nonzero",
                                                   "aten::is_nonzero", "aten::equal"};
    if (kSyncing.count(fn.name())) {
      ++count();
      names().insert(fn.name());
    }
    return nullptr;
  }
  at::CallbackHandle handle_;
};

constexpr int64_t kVocab = 64, kSeq = 12;

model::CausalLm tiny(uint64_t seed = 3) {
  model::CausalLm m = model::make_causal_lm(test::small_gpt_neo(kVocab, 16, 64));
  m->reset_parameters(seed);
  return m;
}

torch::Tensor ids(int64_t rows, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randint(1, kVocab, {rows, kSeq}, torch::kLong);
}

TEST(DeviceDiscipline, CounterSeesEverySyncKind) {
  // The counter itself: each kind of host read counts once.
  const torch::Tensor t = torch::arange(5);
  SyncCounter c;
  (void)t.sum().item<int64_t>();
  (void)t.nonzero();
  (void)t.equal(t);
  EXPECT_EQ(c.syncs(), 3) << c.seen();
}

TEST(DeviceDiscipline, ForwardAndBackwardDoNoHostSync) {
  model::CausalLm m = tiny();
  const torch::Tensor x = ids(4);
  SyncCounter c;
  torch::Tensor hidden = m->forward(x, {.compute_logits = false}).last_hidden_state;
  torch::Tensor loss = model::next_token_ce_sum(hidden, m->head_weight(), x) / 44.0;
  loss.backward();
  // A padded batch (explicit mask and positions) too.
  torch::Tensor mask = torch::ones_like(x);
  mask.narrow(1, 0, 3).zero_();
  m->forward(x, {.attention_mask = mask, .position_ids = model::position_ids_from_mask(mask)});
  EXPECT_EQ(c.syncs(), 0) << c.seen();
}

TEST(DeviceDiscipline, ObjectivesDoNoHostSync) {
  model::CausalLm m = tiny(), ref = tiny();
  const torch::Tensor forget = ids(3, 5), neighbour = ids(3, 6);
  const unlearn::Counts global = unlearn::count_labels(forget, neighbour, 0);  // host counts, before
  for (auto method :
       {unlearn::Method::kIcu, unlearn::Method::kGa, unlearn::Method::kLlmu, unlearn::Method::kPo}) {
    SyncCounter c;
    const unlearn::Terms t =
        unlearn::compute_terms(method, {}, m, &ref, forget, neighbour, /*pad_id=*/0, global);
    t.loss.backward();
    torch::Tensor sums = t.sums();  // accumulated by the caller, read once per optimizer step
    EXPECT_EQ(c.syncs(), 0) << enum_name(method) << ": " << c.seen();
  }
}

TEST(DeviceDiscipline, PrefillAndDecodingStepsDoNoHostSync) {
  model::CausalLm m = tiny();
  m->eval();
  torch::NoGradGuard no_grad;
  SyncCounter c;
  model::KvCache cache;
  torch::Tensor h = m->forward(ids(2), {.cache = &cache, .compute_logits = false}).last_hidden_state;
  torch::Tensor next = m->lm_head(h.select(1, -1)).argmax(-1);
  for (int i = 0; i < 5; ++i)
    next = m->forward(next.unsqueeze(1), {.cache = &cache}).logits.select(1, -1).argmax(-1);
  EXPECT_EQ(c.syncs(), 0) << c.seen();
}

TEST(DeviceDiscipline, GreedyDecodingReadsTheHostOncePerEightTokens) {
  model::CausalLm m = tiny();
  model::GenerateOptions o;
  o.max_new_tokens = 32;
  o.eos_token_ids = {kVocab + 1};  // never produced: every row runs to the end
  SyncCounter c;
  const auto out = model::generate(m, ids(2), {}, o);
  EXPECT_EQ(out.sequences.size(1), kSeq + 32);
  EXPECT_LE(c.syncs(), 32 / 8) << c.seen();
}

TEST(DeviceDiscipline, OptimizerStepSyncsAtMostTwice) {
  for (int stage : {0, 1, 2}) {
    model::CausalLm m = tiny();
    auto self = comm::make_self();
    zero::EngineOptions eo;
    eo.stage = stage;
    eo.bucket_numel = 500;  // several buckets
    zero::ZeroEngine engine(*m, *self, eo);
    const torch::Tensor x = ids(4);
    int64_t micro_syncs = 0, step_syncs = 0;
    for (int micro = 0; micro < 2; ++micro) {
      SyncCounter c;
      torch::Tensor h = m->forward(x, {.compute_logits = false}).last_hidden_state;
      engine.backward(model::next_token_ce_sum(h, m->head_weight(), x) / 88.0);
      micro_syncs += c.syncs();
    }
    {
      SyncCounter c;
      engine.step(1e-3);
      step_syncs = c.syncs();
    }
    EXPECT_EQ(micro_syncs, 0) << "ZeRO-" << stage;
    EXPECT_LE(step_syncs, 2) << "ZeRO-" << stage;
  }
}

}  // namespace
}  // namespace lethe
