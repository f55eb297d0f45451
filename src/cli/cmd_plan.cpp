// `lethe plan --model NAME|DIR --ranks N --zero S [--dtype D --batch B --seq T]`: per-rank memory estimate
// for training with the ZeRO engine (train/memory_plan.h has the formulas).
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/error.h"
#include "core/memory.h"
#include "model/hf_config.h"
#include "model/presets.h"
#include "train/memory_plan.h"

namespace lethe::cli {

int run_plan(int argc, char** argv) {
  std::string model_name = "gpt-neo-125m", dtype = "float32", device = "cpu";
  train::PlanInput in;
  bool json = false;
  po::options_description desc;
  desc.add_options()(
      "model,m", po::value(&model_name)->default_value(model_name),
      "preset name (gpt-neo-125m, gpt-neo-1.3B, gpt-neo-2.7B, tiny, llama-3.2-1b, llama-3.2-3b, llama-2-7b, "
      "llama-tiny) or an HF folder")("ranks,n", po::value(&in.ranks)->default_value(1),
                                     "data-parallel ranks N")("zero", po::value(&in.stage)->default_value(1),
                                                              "ZeRO stage 0, 1 or 2")(
      "dtype", po::value(&dtype)->default_value(dtype), "parameter dtype: float32 | bfloat16 | float16")(
      "device", po::value(&device)->default_value(device),
      "cpu (this process's resident memory) | cuda (one GPU's memory: CUDA context and NCCL buffers "
      "instead of the host runtime)")(
      "activation-checkpointing", po::bool_switch(&in.activation_checkpointing),
      "recompute block activations in backward (train.activation_checkpointing)")(
      "no-fp32-accumulation", po::bool_switch(), "stages 0/1: accumulate 16-bit gradients in their dtype")(
      "reduce-bf16", po::bool_switch(&in.reduce_bf16), "reduce gradients as bf16 (zero.reduce_bf16)")(
      "batch,b", po::value(&in.micro_batch)->default_value(2), "micro-batch size per rank")(
      "seq,t", po::value(&in.seq)->default_value(128), "sequence length")(
      "bucket-numel", po::value(&in.bucket_numel)->default_value(16'000'000), "ZeRO bucket size (elements)")(
      "reference", po::bool_switch(&in.reference_model), "add a frozen reference copy (KL objectives)")(
      "json", po::bool_switch(&json), "machine-readable output");
  const auto vm =
      parse(argc, argv, desc,
            "lethe plan --model NAME|DIR --ranks N --zero S [--dtype D --batch B --seq T] "
            "[--device cpu|cuda]",
            "Estimates the memory one rank needs to train the model, term by term, with the formula "
            "of each.");
  if (!vm) return 0;
  in.fp32_accumulation = !(*vm)["no-fp32-accumulation"].as<bool>();
  LETHE_CHECK_INPUT(device == "cpu" || device == "cuda", "--device {}: expected cpu or cuda", device);
  in.cuda = device == "cuda";
  LETHE_CHECK_INPUT(in.ranks >= 1, "--ranks {}: expected at least 1", in.ranks);
  LETHE_CHECK_INPUT(in.stage >= 0 && in.stage <= 2, "--zero {}: expected 0, 1 or 2", in.stage);
  LETHE_CHECK_INPUT(dtype == "float32" || dtype == "bfloat16" || dtype == "float16",
                    "--dtype {}: expected float32, bfloat16 or float16", dtype);
  LETHE_CHECK_INPUT(in.micro_batch >= 1 && in.seq >= 1 && in.bucket_numel >= 1,
                    "--batch, --seq and --bucket-numel must be >= 1");
  in.param_bytes = dtype == "float32" ? 4 : 2;
  const std::filesystem::path dir(model_name);
  in.arch = std::filesystem::is_directory(dir) ? model::read_hf_config(dir / "config.json")
                                               : model::preset(model_name);
  if (!in.cuda) {
    // Warm the runtime as a training step does (MKL kernels, the OpenMP pool, autograd) before taking this
    // process's resident size as the baseline every rank pays.
    torch::Tensor a = torch::randn({512, 512}, torch::requires_grad());
    a.mm(a).sum().backward();
    in.runtime_bytes = current_rss_bytes();
  }
  const train::Plan plan = train::memory_plan(in);
  const int64_t total = plan.total();
  if (json) {
    nlohmann::json j = {{"model", model_name},
                        {"parameters", in.arch.parameter_count()},
                        {"ranks", in.ranks},
                        {"zero", in.stage},
                        {"dtype", dtype},
                        {"device", device},
                        {"batch", in.micro_batch},
                        {"seq", in.seq},
                        {"total_bytes", total},
                        {"build_peak_bytes", plan.build_peak},
                        {"train_peak_bytes", plan.train_peak}};
    for (const auto& t : plan.terms)
      j["terms"].push_back({{"name", t.name},
                            {"bytes", t.bytes},
                            {"formula", t.formula},
                            {"build_phase_only", t.phase == train::Phase::kBuild}});
    print_json(j);
    return 0;
  }
  std::cout << fmt::format(
      "{}: {:.1f} M parameters, {} rank(s), ZeRO-{}, {}, micro-batch {} x {} tokens, {} memory per rank\n\n",
      model_name, static_cast<double>(in.arch.parameter_count()) / 1e6, in.ranks, in.stage, dtype,
      in.micro_batch, in.seq, in.cuda ? "GPU" : "host");
  auto mib = [](int64_t b) { return static_cast<double>(b) / (1 << 20); };
  for (const auto& t : plan.terms)
    std::cout << fmt::format("  {:<16} {:>10.1f} MiB   {}\n", t.name, mib(t.bytes), t.formula);
  std::cout << fmt::format("\n  {:<16} {:>10.1f} MiB   every term resident while the model is built\n",
                           "building", mib(plan.build_peak));
  std::cout << fmt::format("  {:<16} {:>10.1f} MiB   every term but the model as built\n", "training",
                           mib(plan.train_peak));
  std::cout << fmt::format("  {:<16} {:>10.1f} MiB   per rank (the larger of the two)\n", "peak", mib(total));
  return 0;
}

}  // namespace lethe::cli
