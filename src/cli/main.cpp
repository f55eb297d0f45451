// `lethe`: one binary, subcommands (architecture.md §3). Thin: parse the subcommand, run it, map failures to
// the contract's exit codes (0 ok, 1 runtime failure, 2 bad input or usage).
#include <cstring>
#include <iostream>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/memory.h"
#include "lethe/version.h"

namespace lethe::cli {
int run_info(int, char**);
int run_config(int, char**);
int run_tokenize(int, char**);
int run_score(int, char**);
int run_generate(int, char**);
int run_init_model(int, char**);
int run_train(int, char**);
int run_plan(int, char**);
int run_export(int, char**);
int run_prep(int, char**);
int run_unlearn(int, char**);
int run_eval(int, char**);
int run_status(int, char**);
int run_report(int, char**);

constexpr Command kCommands[] = {
    {"info", "version, libtorch, built-in backends", run_info},
    {"config", "print the resolved, validated config (--dump)", run_config},
    {"tokenize", "GPT-2 BPE token ids of a text, or text of ids (--decode)", run_tokenize},
    {"score", "per-token log-probabilities of texts or id sequences under a model", run_score},
    {"generate", "greedy or beam-search continuation of a prompt", run_generate},
    {"init-model", "write a randomly initialised GPT-Neo or Llama as a Hugging Face folder", run_init_model},
    {"train", "fine-tune with the LM loss, alone or under mpirun (ZeRO-sharded AdamW)", run_train},
    {"prep", "forget-target selection and nearest-neighbour pairs (datasets/<name>/pairs.h5)", run_prep},
    {"unlearn", "the main job: ICU or a baseline, alone or under mpirun", run_unlearn},
    {"eval", "forget-set EL/MA/BLEU and retained-row MA of a model", run_eval},
    {"export", "a training or unlearning checkpoint (any N, any stage) as a Hugging Face folder", run_export},
    {"plan", "per-rank memory estimate for a model x ranks x ZeRO stage", run_plan},
    {"status", "where a running or finished run stands (step, epoch, ETA, checkpoint, requeues)", run_status},
    {"report", "mean ± std table, CSV and curves over finished unlearn runs (results/run-*)", run_report},
};

void usage(std::ostream& os) {
  os << "usage: lethe <command> [options]   (lethe <command> --help for its options)\n\ncommands:\n";
  for (const Command& c : kCommands)
    os << "  " << c.name << std::string(12 - std::strlen(c.name), ' ') << c.summary << "\n";
  os << "\nlethe --version prints the version. Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage, "
        "143 stopped by a signal\n(checkpoint saved).\n";
}

}  // namespace lethe::cli

int main(int argc, char** argv) {
  using namespace lethe;
  retain_freed_memory();
  if (argc < 2) {
    cli::usage(std::cerr);
    return kExitBadInput;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    cli::usage(std::cout);
    return kExitOk;
  }
  if (cmd == "--version") {
    std::cout << "lethe " << LETHE_VERSION << " (libtorch " << LETHE_TORCH_VERSION << ")\n";
    return kExitOk;
  }
  for (const cli::Command& c : cli::kCommands) {
    if (cmd != c.name) continue;
    std::string name = std::string("lethe ") + c.name;
    argv[1] = name.data();
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const InputError& e) {
      std::cerr << "error: " << e.what() << "\n";
      return kExitBadInput;
    } catch (const c10::Error& e) {
      std::cerr << "error: " << e.what_without_backtrace() << "\n";
      return kExitRuntime;
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return kExitRuntime;
    }
  }
  std::cerr << "error: unknown command '" << cmd << "'\n";
  cli::usage(std::cerr);
  return kExitBadInput;
}
