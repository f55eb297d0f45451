// lethe_device_check's runner: options, the step order, one printed line per step, the JSON file, and the
// helpers the step files share. See device_check.h for what the steps are.
#include "device_check.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "comm/nccl.h"
#include "model/lm_loss.h"
#include "zero/engine.h"

namespace lethe::device_check {

void Result::at_most(const std::string& key, double value, double limit) {
  number(key, value);
  if (!(value <= limit)) fail(fmt::format("{} = {:.3g}, limit {:.3g}", key, value, limit));  // NaN fails too
}

model::GptNeoConfig tiny_config() {
  model::GptNeoConfig c;
  c.vocab_size = 512;
  c.max_position_embeddings = 64;
  c.hidden_size = 64;
  c.num_layers = 4;
  c.num_heads = 4;
  c.window_size = 8;
  c.initializer_range = 0.1;
  c.bos_token_id = c.eos_token_id = 511;
  c.attention_layers = model::alternating_attention(c.num_layers);
  return c;
}

model::GptNeoConfig released_config(int64_t layers, int64_t hidden, int64_t heads) {
  model::GptNeoConfig c;  // defaults: vocab 50257, 2048 positions, window 256
  c.num_layers = layers;
  c.hidden_size = hidden;
  c.num_heads = heads;
  c.attention_layers = model::alternating_attention(layers);
  return c;
}

void copy_parameters(model::CausalLm& dst, const model::CausalLm& src) {
  torch::NoGradGuard no_grad;
  const auto from = src->named_parameters();
  for (auto& p : dst->named_parameters()) p.value().copy_(from[p.key()]);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  if (a.numel() == 0) return 0;
  const auto cpu64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); };
  return (cpu64(a) - cpu64(b)).abs().max().item<double>();
}

// --- the ZeRO run shared by zero_cuda_vs_cpu and the NCCL ranks --------------------------------------------
namespace {
constexpr int64_t kZeroSeq = 24, kZeroSteps = 5;
constexpr double kZeroLr = 1e-2;

// Global batch of optimizer step `step`: [kZeroBatch, kZeroSeq] ids, drawn on the CPU so every process and
// device sees the same tokens.
torch::Tensor zero_batch(int64_t step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + step);
  return at::randint(0, tiny_config().vocab_size, {kZeroBatch, kZeroSeq}, gen, torch::kLong);
}

// The real elements of the flat parameter buffer (padding differs with the world size): [Ψ] fp32 on the CPU.
torch::Tensor flat_cpu(const zero::ZeroEngine& e) {
  return e.flat_parameters().narrow(0, 0, e.layout().numel()).to(torch::kCPU, torch::kFloat).clone();
}
}  // namespace

ZeroRun train_tiny(comm::Communicator& comm, torch::Device device, int stage, int64_t begin, int64_t rows,
                   const TinyOptions& options) {
  model::CausalLm m = model::make_causal_lm(tiny_config(), device, options.dtype);
  m->reset_parameters(5);  // drawn on the CPU: the same weights on every device
  m->set_activation_checkpointing(options.activation_checkpointing);
  zero::EngineOptions o;
  o.stage = stage;
  o.bucket_numel = 3000;  // ~40 buckets: parameters straddle rank slices and per-rank counts are uneven
  o.adam.weight_decay = 0.1;
  // eps 1e-6 instead of 1e-8: an element whose gradient is within rounding noise of zero would otherwise take
  // a full ±lr step in whichever direction the device's summation order gives it. Gradients well above 1e-6
  // still get Adam's normalised step, which that noise does not move.
  o.adam.eps = 1e-6;
  o.max_grad_norm = 1.0;
  o.fp32_accumulation = options.fp32_accumulation;
  o.reduce_bf16 = options.reduce_bf16;
  if (options.loss_scale > 0)
    o.loss_scaling = {.enabled = true, .initial_scale = options.loss_scale, .growth_interval = 2};
  zero::ZeroEngine engine(*m, comm, o);
  ZeroRun run;
  run.initial = flat_cpu(engine);
  const double labels = static_cast<double>(kZeroBatch * (kZeroSeq - 1));
  for (int64_t s = 0; s < kZeroSteps; ++s) {
    if (s + 1 == kZeroSteps) comm.reset_stats();
    const torch::Tensor all = zero_batch(s).narrow(0, begin, rows).to(device);
    const int64_t per = rows / options.micro_steps;
    for (int64_t k = 0; k < options.micro_steps; ++k) {
      const torch::Tensor ids = all.narrow(0, k * per, per);
      const torch::Tensor hidden =
          m->forward(ids, {.compute_logits = false}).last_hidden_state;  // [per, 24, 64]
      engine.backward(model::next_token_ce_sum(hidden, m->head_weight(), ids) / labels);
    }
    if (engine.step(kZeroLr).skipped) ++run.skipped;
  }
  run.final = flat_cpu(engine);
  run.last_step = comm.stats();
  run.predicted_reduce = engine.predicted_reduce_bytes(1);
  run.predicted_gather = engine.predicted_gather_bytes();
  return run;
}

void compare_zero(Result& r, const std::string& prefix, const ZeroRun& got, const ZeroRun& want) {
  r.at_most(prefix + "initial_diff", max_abs_diff(got.initial, want.initial), 0);
  r.at_most(prefix + "max_abs_diff", max_abs_diff(got.final, want.final), 1e-5);
  // lr 1e-2 for 5 steps moves most weights by ~1e-2.
  const double moved = max_abs_diff(want.final, want.initial);
  r.number(prefix + "max_update", moved);
  if (!(moved > 1e-3)) r.fail(fmt::format("{}: training moved no weight by more than 1e-3", prefix));
}

namespace {
using Clock = std::chrono::steady_clock;

// The order steps run in: cheap correctness first, then the two-process NCCL steps, then the long ones
// (throughput before the 2.7B step, whose ~55 GB would otherwise linger in the caching allocator).
const std::vector<std::string> kOrder = {
    "parity_fp32", "parity_bf16",      "generate",   "sdpa_kernel", "zero_cuda_vs_cpu",
    "precision",   "nccl_collectives", "rank_death", "throughput",  "memory_2p7b_step"};

// --- options -----------------------------------------------------------------------------------------------
struct Args {
  std::string json;
  bool dry_run = false;
  std::vector<std::string> only, skip;
  int rank = -1, world = 0;  // child rank mode when rank >= 0
  std::string store, mode = "collectives";
};

constexpr const char* kUsage =
    "usage: lethe_device_check [--json OUT] [--dry-run] [--only STEP,...] [--skip STEP,...]\n"
    "Runs lethe's GPU checks; exits 0 when all pass (or when no GPU is visible), 1 when one fails.\n";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= s.size()) {
    const size_t end = std::min(s.find(',', begin), s.size());
    if (end > begin) out.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

std::optional<Args> parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 < argc) return std::string(argv[++i]);
      std::cerr << arg << " needs a value\n" << kUsage;
      return std::nullopt;
    };
    std::optional<std::string> v;
    if (arg == "--dry-run") {
      a.dry_run = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (arg != "--json" && arg != "--only" && arg != "--skip" && arg != "--rank" && arg != "--world" &&
        arg != "--store" && arg != "--mode") {
      std::cerr << "unknown option " << arg << "\n" << kUsage;
      return std::nullopt;
    }
    if (!(v = value())) return std::nullopt;
    if (arg == "--json") a.json = *v;
    if (arg == "--only") a.only = split_list(*v);
    if (arg == "--skip") a.skip = split_list(*v);
    if (arg == "--rank") a.rank = std::stoi(*v);
    if (arg == "--world") a.world = std::stoi(*v);
    if (arg == "--store") a.store = *v;
    if (arg == "--mode") a.mode = *v;
  }
  return a;
}

// The steps to run, in kOrder, after --only and --skip; nullopt (after a message) on an unknown name.
std::optional<std::vector<Step>> select_steps(const Args& a, const Context& ctx) {
  std::map<std::string, Step> by_name;
  for (auto list : {model_steps(), precision_steps(), nccl_steps(ctx)})
    for (Step& s : list) by_name.emplace(s.name, std::move(s));
  for (const auto& names : {a.only, a.skip})
    for (const std::string& n : names)
      if (!by_name.contains(n)) {
        std::cerr << "unknown step " << n << "; steps: " << fmt::format("{}", fmt::join(kOrder, ", "))
                  << "\n";
        return std::nullopt;
      }
  auto listed = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  std::vector<Step> out;
  for (const std::string& n : kOrder) {
    if (!a.only.empty() && !listed(a.only, n)) continue;
    if (listed(a.skip, n)) continue;
    out.push_back(by_name.at(n));
  }
  return out;
}

// --- JSON --------------------------------------------------------------------------------------------------
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string number_json(double v) {
  return std::isfinite(v) ? fmt::format("{}", v) : "null";
}

// {"name": ..., "ok": ..., "seconds": ..., <numbers>, <notes>, "errors": [...]}
std::string result_json(const Result& r) {
  std::string s = fmt::format("{{\"name\": {}, \"ok\": {}, \"seconds\": {}", quote(r.name),
                              r.ok ? "true" : "false", number_json(r.seconds));
  for (const auto& [k, v] : r.numbers) s += fmt::format(", {}: {}", quote(k), number_json(v));
  for (const auto& [k, v] : r.notes) s += fmt::format(", {}: {}", quote(k), quote(v));
  s += ", \"errors\": [";
  for (size_t i = 0; i < r.errors.size(); ++i) s += (i ? ", " : "") + quote(r.errors[i]);
  return s + "]}";
}

// Rewritten after every step (atomically), so a run cut short by a timeout still leaves what it measured.
void write_json(const std::string& path, const Result& device, const std::vector<Result>& steps,
                bool complete) {
  bool ok = true;
  for (const Result& r : steps) ok = ok && r.ok;
  std::string s = fmt::format("{{\n  \"tool\": \"lethe_device_check\",\n  \"complete\": {},\n  \"ok\": {},\n",
                              complete ? "true" : "false", ok ? "true" : "false");
  s += "  \"device\": " + result_json(device) + ",\n  \"steps\": [";
  for (size_t i = 0; i < steps.size(); ++i) s += (i ? ",\n    " : "\n    ") + result_json(steps[i]);
  s += "\n  ]\n}\n";
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << s;
  std::filesystem::rename(tmp, path);
}

// --- running -----------------------------------------------------------------------------------------------
Result device_info() {
  Result d;
  d.name = "device";
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
    d.note("gpu", p.name);
    d.number("capability", p.major * 10 + p.minor);
    d.number("total_bytes", static_cast<double>(p.totalGlobalMem));
  }
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  d.number("gpus_visible", torch::cuda::device_count());
  d.number("cuda_runtime", runtime);
  d.number("cuda_driver", driver);
  d.number("nccl", comm::nccl_version());
  d.note("torch", TORCH_VERSION);
  d.note("tf32_cublas", at::globalContext().allowTF32CuBLAS() ? "on" : "off");
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  d.note("host", host);
  return d;
}

// " key=value ..." of a result's notes and numbers: the first 12 (the NCCL step has ~100; the JSON has all).
std::string fields_line(const Result& r) {
  std::vector<std::string> items;
  for (const auto& [k, v] : r.notes) items.push_back(fmt::format("{}={}", k, v));
  for (const auto& [k, v] : r.numbers) items.push_back(fmt::format("{}={:.4g}", k, v));
  constexpr size_t kShown = 12;
  std::string s;
  for (size_t i = 0; i < std::min(items.size(), kShown); ++i) s += " " + items[i];
  if (items.size() > kShown) s += fmt::format(" (+{} more)", items.size() - kShown);
  return s;
}

void run_one(const Step& step, Result& r) {
  try {
    step.run(r);
    torch::cuda::synchronize();  // an asynchronous CUDA error belongs to this step, not the next
  } catch (const c10::Error& e) {
    r.fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    r.fail(e.what());
  }
  try {
    c10::cuda::CUDACachingAllocator::emptyCache();  // the next step (and its memory peak) starts clean
  } catch (const std::exception& e) {
    r.fail(fmt::format("emptyCache after the step: {}", e.what()));
  }
}

int run_steps(const Args& a, const std::vector<Step>& steps) {
  const Result device = device_info();
  std::cout << "device:" << fields_line(device) << std::endl;
  std::vector<Result> done;
  for (const Step& step : steps) {
    Result r;
    r.name = step.name;
    const auto t0 = Clock::now();
    run_one(step, r);
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::cout << fmt::format("[{}] {} ({:.1f} s){}", r.ok ? " ok " : "FAIL", r.name, r.seconds,
                             fields_line(r))
              << std::endl;
    for (const std::string& e : r.errors) std::cout << "       error: " << e << std::endl;
    done.push_back(std::move(r));
    if (!a.json.empty()) write_json(a.json, device, done, false);
  }
  if (!a.json.empty()) write_json(a.json, device, done, true);
  int failed = 0;
  for (const Result& r : done) failed += r.ok ? 0 : 1;
  std::cout << fmt::format("{} of {} steps passed{}", done.size() - failed, done.size(),
                           a.json.empty() ? "" : "; results in " + a.json)
            << std::endl;
  return failed ? 1 : 0;
}

void skip_without_gpu(const Args& a) {
  const std::string msg = "no CUDA device visible: skipping (this check needs a GPU)";
  std::cout << msg << std::endl;
  if (a.json.empty()) return;
  std::ofstream(a.json) << fmt::format(
      "{{\n  \"tool\": \"lethe_device_check\",\n  \"skipped\": true,\n  \"reason\": {}\n}}\n", quote(msg));
}

}  // namespace
}  // namespace lethe::device_check

int main(int argc, char** argv) {
  using namespace lethe::device_check;
  const std::optional<Args> args = parse_args(argc, argv);
  if (!args) return 2;
  if (args->rank >= 0) return run_rank(args->rank, args->world, args->store, args->mode);
  const Context ctx{std::filesystem::read_symlink("/proc/self/exe").string()};
  const std::optional<std::vector<Step>> steps = select_steps(*args, ctx);
  if (!steps) return 2;
  if (args->dry_run) {
    std::cout << "lethe_device_check would run, in this order:\n";
    for (const Step& s : *steps) std::cout << fmt::format("  {:<18} {}\n", s.name, s.what);
    if (!args->json.empty()) std::cout << "and write the results to " << args->json << "\n";
    return 0;
  }
  if (!torch::cuda::is_available()) {
    skip_without_gpu(*args);
    return 0;
  }
  return run_steps(*args, *steps);
}
