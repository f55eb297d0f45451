"""Pre-emption benchmark: lethe beside DeepSpeed (bench/peer_preempt.py) in the same run, GPT-Neo-125M shape,
ZeRO-2, N ranks on this machine, fp32 AdamW, one thread per rank.

For each implementation and repeat: start a fresh job, let it run `--warm` optimizer steps, send SIGUSR1 to
every rank right after a step is logged (what Slurm's --signal or the batch script's forward does), and time

  signal -> exit       until the job has exited (143) with a complete checkpoint (lethe: COMPLETE +
                       `latest`; DeepSpeed: its `latest` file); both finish the step in flight first
  restart -> 1st step  from spawning the resumed job to its first new optimizer step being logged
                       (process start, imports, model build, checkpoint load, one step)

plus what each reports itself (checkpoint write and load seconds) and the step time before the signal.
Writes <out>/preempt.json and prints a markdown table with DeepSpeed / lethe ratios (BENCHMARKS.md).

Usage: python bench/bench_preempt.py [--ranks 2] [--repeats 3] [--warm 3] [--seq 128] [--out results/bench/preempt]
Build first (bash launch/build.sh); DeepSpeed comes from bench/requirements-bench.txt (bench/bench_zero.sh).
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_oob_tcp_if_include="lo")


class Job:
    """A launched job whose merged output is read line by line, each line stamped on arrival."""

    def __init__(self, cmd, env):
        self.lines, self.cond = [], threading.Condition()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append((time.time(), line.rstrip("\n")))
                self.cond.notify_all()

    def wait_for(self, pattern, after=0, timeout=600):
        """(time, match) of the first line from index `after` on that matches; fails on exit or timeout."""
        rx, t0 = re.compile(pattern), time.time()
        with self.cond:
            i = after
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        return self.lines[i][0], m, i
                    i += 1
                if self.p.poll() is not None and i >= len(self.lines):
                    raise RuntimeError(f"job exited {self.p.returncode} before /{pattern}/:\n" + self.text())
                if time.time() - t0 > timeout:
                    raise TimeoutError(f"no /{pattern}/ after {timeout} s:\n" + self.text())
                self.cond.wait(0.5)

    def ranks(self):
        out = subprocess.run(["pgrep", "-P", str(self.p.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def kill(self):
        # torchrun starts its workers in sessions of their own: kill them by pid, then the launcher's group.
        for pid in self.ranks():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()

    def text(self):
        return "\n".join(l for _, l in self.lines[-40:])


def lethe_cmd(a, d, resume):
    sets = {"model.preset": "gpt-neo-125m", "data.train_path": d.parent / "rows.npy", "train.steps": 100000,
            "train.global_batch_size": a.ranks, "train.micro_batch_size": 1, "optimizer.lr": 1e-5,
            "optimizer.weight_decay": 0.01, "optimizer.max_grad_norm": 1.0, "train.log_every": 1, "zero.stage": 2,
            "runtime.threads": 1, "train.save_final": "false", "metrics.flush_seconds": 5,
            "run.output_dir": d, "run.name": "run", "checkpoint.keep_last": 1}
    args = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    return (["mpirun", "-np", str(a.ranks), "--bind-to", "none", str(ROOT / "build/lethe"), "train", *args]
            + (["--resume", "auto"] if resume else []))


def peer_cmd(a, d, resume):
    return (["bash", str(ROOT / "bench/peer_deepspeed.sh"), "--seq", str(a.seq), "--micro-batch", "1",
             "--global-batch", str(a.ranks), "--threads", "1", "--dir", str(d / "ckpt")]
            + (["--resume"] if resume else []))


IMPLS = {
    # step line, own checkpoint-write line, own load line, completeness marker
    "lethe": dict(cmd=lethe_cmd, step=r"\bstep (\d+)/\d+ \|", save=r"checkpoint \S+ \(.*, ([\d.]+) s\)",
                  load=r"resumed from .* in ([\d.]+) s", rc=143, done=lambda d: (d / "run/checkpoints/latest").exists()),
    "deepspeed": dict(cmd=peer_cmd, step=r"^step (\d+) ", save=r"^saved ([\d.]+)", load=r"^resumed \d+ ([\d.]+)", rc=1,
                      done=lambda d: (d / "ckpt/latest").exists()),
}


def measure(a, name, d, env):
    impl = IMPLS[name]
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    job = Job(impl["cmd"](a, d, False), env)
    try:
        times = [job.wait_for(impl["step"], timeout=900)]
        while int(times[-1][1][1]) < a.warm:
            times.append(job.wait_for(impl["step"], after=times[-1][2] + 1))
        t0 = time.time()
        for pid in job.ranks():
            os.kill(pid, signal.SIGUSR1)
        rc = job.p.wait(timeout=600)
        t1 = time.time()
        t_saved, m, _ = job.wait_for(impl["save"])
        saved = float(m[1])
        # torchrun reports a worker's 143 as its own failure (exit 1); the "saved" line and `latest` tell.
        if rc != impl["rc"] or not impl["done"](d):
            raise RuntimeError(f"{name}: exit {rc}, checkpoint complete: {impl['done'](d)}\n{job.text()}")
        step_s = (times[-1][0] - times[0][0]) / max(1, len(times) - 1)
    finally:
        job.kill()
    t2 = time.time()
    job = Job(impl["cmd"](a, d, True), env)
    try:
        t3 = job.wait_for(impl["step"], timeout=900)[0]
        loaded = float(job.wait_for(impl["load"])[1][1])
    finally:
        job.kill()
    return {"signal_to_exit_s": t1 - t0, "signal_to_saved_s": t_saved - t0, "restart_to_first_step_s": t3 - t2, "save_s": saved, "load_s": loaded,
            "step_s": step_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warm", type=int, default=3, help="optimizer steps before the signal")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--out", default="results/bench/preempt")
    a = ap.parse_args()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    np.save(out / "rows.npy", np.random.default_rng(0).integers(0, 50257, (64, a.seq)).astype(np.uint16))
    env = dict(os.environ, **MPI_ENV, OMP_NUM_THREADS="1", NPROC=str(a.ranks), CUDA_VISIBLE_DEVICES="",
               PEER=str(ROOT / "bench/peer_preempt.py"))
    res = {name: [] for name in IMPLS}
    for r in range(a.repeats):  # interleaved, so a slow spell of the machine hits both
        for name in IMPLS:
            m = measure(a, name, out / name, env)
            res[name].append(m)
            print(f"{name} #{r}: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items()), file=sys.stderr, flush=True)
    (out / "preempt.json").write_text(json.dumps({"args": vars(a), "results": res}, indent=2))
    med = {n: {k: statistics.median(m[k] for m in ms) for k in ms[0]} for n, ms in res.items()}
    print(f"| median of {a.repeats}, {a.ranks} ranks, 125M shape | lethe | DeepSpeed | DeepSpeed / lethe |")
    print("|---|---|---|---|")
    for k, label in [("signal_to_exit_s", "signal → exit, checkpoint complete (s)"),
                     ("signal_to_saved_s", "  signal → checkpoint written (logged) (s)"),
                     ("save_s", "  checkpoint write alone, own log (s)"),
                     ("restart_to_first_step_s", "restart → first new step (s)"),
                     ("load_s", "  checkpoint load alone, own log (s)"), ("step_s", "step time before (s)")]:
        lt, ds = med["lethe"][k], med["deepspeed"][k]
        print(f"| {label} | {lt:.2f} | {ds:.2f} | {ds / lt:.2f}x |")


if __name__ == "__main__":
    main()
