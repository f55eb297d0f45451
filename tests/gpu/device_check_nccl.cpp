// The two-process NCCL steps. The parent starts this executable twice, as ranks 0 and 1 of an NCCL group that
// both live on GPU 0 (device_check_rank.cpp), bootstrapped through files instead of MPI. Each process gets
// its own NCCL_HOSTID, so NCCL takes them for two hosts and connects them with its socket transport over
// loopback (two ranks of one host on one GPU are refused: "Duplicate GPU detected"). Slow, but it runs every
// code path of comm/nccl.cpp that a multi-node job does, on a single-GPU machine.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>

#include "device_check.h"

extern char** environ;

namespace lethe::device_check {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kDeathSlack = 40;  // rank_death: watchdog poll, ncclCommAbort, process exit

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A child rank as the parent sees it.
struct Child {
  pid_t pid = -1;
  fs::path log;
  bool done = false, killed = false, signaled = false;
  int code = 0;   // exit status, or the signal number when signaled
  double at = 0;  // seconds after the wait began at which it ended
};

// The parent's environment plus what makes two processes on one GPU a two-host NCCL group over loopback.
std::vector<std::string> child_env(int rank, int nccl_timeout) {
  const std::map<std::string, std::string> set = {
      {"NCCL_HOSTID", fmt::format("lethe-device-check-{}", rank)},  // two "hosts": no duplicate-GPU refusal
      {"NCCL_SOCKET_IFNAME", "lo"},
      {"NCCL_P2P_DISABLE", "1"},  // no same-host transports between the two "hosts"
      {"NCCL_SHM_DISABLE", "1"},
      // The built-in socket transport, even where InfiniBand or a network plugin exists.
      {"NCCL_IB_DISABLE", "1"},
      {"NCCL_NET", "Socket"},
      {"LETHE_ALLOW_SHARED_GPU", "1"},
      {"LETHE_NCCL_TIMEOUT", std::to_string(nccl_timeout)}};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (!set.contains(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

// Starts `exe args` with `env`, stdout and stderr into `log`. posix_spawn, not fork: this process holds a
// CUDA context, which a forked child must not use.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const fs::path& log) {
  auto pointers = [](const std::vector<std::string>& v) {
    std::vector<char*> p;
    for (const std::string& s : v) p.push_back(const_cast<char*>(s.c_str()));
    p.push_back(nullptr);
    return p;
  };
  std::vector<char*> argv = pointers(args), envp = pointers(env);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error(fmt::format("cannot start {}: {}", args[0], std::strerror(rc)));
  return pid;
}

std::vector<Child> start_ranks(const Context& ctx, const fs::path& store, const std::string& mode,
                               int timeout) {
  std::vector<Child> kids(2);
  for (int r = 0; r < 2; ++r) {
    kids[r].log = store / fmt::format("rank{}.log", r);
    kids[r].pid = spawn(
        {ctx.self, "--rank", std::to_string(r), "--world", "2", "--store", store.string(), "--mode", mode},
        child_env(r, timeout), kids[r].log);
  }
  return kids;
}

// Polls until every child has exited or deadline(kids) (seconds since the wait began) has passed; children
// still running then are killed (SIGKILL) and marked so.
void wait_children(std::vector<Child>& kids,
                   const std::function<double(const std::vector<Child>&)>& deadline) {
  const auto t0 = Clock::now();
  for (;;) {
    const double now = seconds_since(t0);
    bool running = false;
    for (Child& k : kids) {
      int status = 0;
      if (k.done) continue;
      if (waitpid(k.pid, &status, WNOHANG) != k.pid) {
        running = true;
        continue;
      }
      k.done = true;
      k.at = now;
      k.signaled = WIFSIGNALED(status);
      k.code = k.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
    }
    if (!running) return;
    if (now > deadline(kids)) {
      for (Child& k : kids) {
        if (k.done) continue;
        kill(k.pid, SIGKILL);
        waitpid(k.pid, nullptr, 0);
        k.done = k.killed = true;
        k.at = now;
      }
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string exit_text(const Child& k) {
  if (k.killed) return fmt::format("still running after {:.0f} s, killed", k.at);
  return k.signaled ? fmt::format("killed by signal {}", k.code) : fmt::format("exit code {}", k.code);
}

// The last `lines` non-empty lines of a log, joined with " | ".
std::string log_tail(const fs::path& log, size_t lines = 4) {
  std::ifstream in(log);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += (out.empty() ? "" : " | ") + all[i];
  return out;
}

// A fresh directory for one step's bootstrap files, results and logs.
fs::path make_store(const std::string& tag) {
  std::string path = (fs::temp_directory_path() / ("lethe-device-check-" + tag + "-XXXXXX")).string();
  if (!mkdtemp(path.data())) throw std::runtime_error("mkdtemp " + path + ": " + std::strerror(errno));
  return path;
}

// Kept (and named in the results) when the step failed, removed otherwise.
void finish_store(Result& r, const fs::path& store) {
  if (r.ok)
    fs::remove_all(store);
  else
    r.note("logs", store.string());
}

void nccl_collectives_step(Result& r, const Context& ctx) {
  const fs::path store = make_store("nccl");
  c10::cuda::CUDACachingAllocator::emptyCache();  // the children share this GPU
  std::vector<Child> kids = start_ranks(ctx, store, "collectives", 60);
  // The ranks give up on their own after 60 s (NCCL) or 120 s (bootstrap files); this is the backstop.
  wait_children(kids, [](const std::vector<Child>&) { return 150.0; });
  for (int rank = 0; rank < 2; ++rank) {
    const Child& k = kids[rank];
    const fs::path file = store / fmt::format("result.{}", rank);
    if (fs::exists(file))
      load_lines(r, file.string(), fmt::format("rank{}_", rank));
    else
      r.fail(fmt::format("rank {} wrote no results", rank));
    if (k.killed || k.signaled || k.code != 0)
      r.fail(fmt::format("rank {}: {}; log: {}", rank, exit_text(k), log_tail(k.log)));
  }
  finish_store(r, store);
}

void rank_death_step(Result& r, const Context& ctx) {
  const fs::path store = make_store("death");
  c10::cuda::CUDACachingAllocator::emptyCache();
  std::vector<Child> kids = start_ranks(ctx, store, "death", kDeathTimeout);
  // Until rank 1 has died: long enough for both to start and join. After: the watchdog's timeout plus slack.
  wait_children(kids, [](const std::vector<Child>& k) {
    return k[1].done ? k[1].at + kDeathTimeout + kDeathSlack : 180.0;
  });
  const Child &survivor = kids[0], &dead = kids[1];
  r.note("rank0_message", log_tail(survivor.log, 1));
  if (dead.killed || dead.signaled || dead.code != kDeadRankCode) {
    r.fail(fmt::format("rank 1 never reached its planned exit ({}); log: {}", exit_text(dead),
                       log_tail(dead.log)));
  } else if (survivor.killed) {
    r.fail(fmt::format("rank 0 hung: {} s after its peer died it was still running",
                       kDeathTimeout + kDeathSlack));
  } else {
    r.at_most("rank0_seconds_after_peer_exit", survivor.at - dead.at, kDeathTimeout + kDeathSlack);
    r.number("rank0_exit_code", survivor.code);
    if (survivor.signaled)
      r.fail(fmt::format("rank 0 died of signal {} instead of the watchdog's exit", survivor.code));
    else if (survivor.code == 0 || survivor.code == kSurvivedCode)
      r.fail(fmt::format("rank 0 exited with code {}: the watchdog did not end it", survivor.code));
  }
  finish_store(r, store);
}

}  // namespace

std::vector<Step> nccl_steps(const Context& ctx) {
  return {
      {"nccl_collectives",
       "2 ranks on GPU 0, NCCL over loopback sockets, files as bootstrap: all_reduce (fp32, bf16, int64, "
       "max), "
       "broadcast, reduce_scatter and all_gather with equal, uneven and empty pieces (exact); ZeRO-2 on half "
       "the batch each vs 1 CPU process (1e-5)",
       [ctx](Result& r) { nccl_collectives_step(r, ctx); }},
      {"rank_death",
       "rank 1 exits before a collective: rank 0's watchdog (LETHE_NCCL_TIMEOUT=20) must end it, non-zero "
       "exit, within 60 s",
       [ctx](Result& r) { rank_death_step(r, ctx); }},
  };
}

}  // namespace lethe::device_check
