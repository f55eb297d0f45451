"""Summarises bench/bench_zero.sh: lethe's metrics.h5 per run (mean over the timed steps, the first step is
warm-up), DeepSpeed's JSON, checkpoint throughput from lethe's log lines, dd's figures.
Usage: zero_report.py OUT_DIR STEPS"""
import json
import pathlib
import re
import sys

import h5py

out, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2])


def parameter_count(layers, hidden, vocab=50257, positions=2048):
    """Unique parameters of a GPT-Neo with a tied LM head (model::parameter_count)."""
    per_layer = 2 * 2 * hidden + 4 * hidden * hidden + hidden + 8 * hidden * hidden + 5 * hidden
    return vocab * hidden + positions * hidden + layers * per_layer + 2 * hidden


PSI = {"neo125m": parameter_count(12, 768), "small": parameter_count(4, 256)}
assert PSI["neo125m"] == 125198592


def lethe_row(name, n):
    with h5py.File(out / f"lethe-{name}-{n}" / "metrics.h5", "r") as f:
        t = {k: f["train/" + k][1:] for k in f["train"]}  # drop the warm-up step
    mean = lambda k: float(t[k].mean())
    return {"step_s": mean("step_seconds"), "tokens_per_s": mean("tokens_per_s"), "comm_s": mean("comm_seconds"),
            "rs_mb": mean("reduce_scatter_bytes") / 1e6, "ag_mb": mean("all_gather_bytes") / 1e6,
            "opt_bytes": float(t["optimizer_bytes"][-1]), "grad_peak_mb": float(t["grad_bytes_peak"][-1]) / 1e6,
            "peak_rss_mb": float(t["peak_rss_bytes"].max()) / 2**20}


def mb_per_s(line):
    m = re.search(r"\(([\d.]+) MB on rank 0, ([\d.]+) s\)", line) or re.search(r": ([\d.]+) MB in ([\d.]+) s", line)
    return float(m.group(1)) / float(m.group(2)) if m else float("nan")


def dd(file):
    m = re.search(r"([\d.]+) ([MG])B/s", (out / file).read_text())
    return float(m.group(1)) * (1000 if m.group(2) == "G" else 1)


print(f"\n{'shape':8} {'impl':10} {'N':>2} {'step s':>8} {'tok/s':>8} {'comm s':>7} {'RS MB':>7} {'AG MB':>7} "
      f"{'opt B/rank':>12} {'12Ψ/N':>12} {'grad MB':>8} {'peak RSS MB':>11}")
summary = {}
for name in PSI:
    for n in (1, 2):
        r = lethe_row(name, n)
        summary[f"lethe-{name}-{n}"] = r
        print(f"{name:8} {'lethe':10} {n:>2} {r['step_s']:8.2f} {r['tokens_per_s']:8.1f} {r['comm_s']:7.2f} "
              f"{r['rs_mb']:7.1f} {r['ag_mb']:7.1f} {r['opt_bytes']:12.0f} {12 * PSI[name] / n:12.0f} "
              f"{r['grad_peak_mb']:8.1f} {r['peak_rss_mb']:11.0f}")
    r = lethe_row(name, "2-malloc")
    summary[f"lethe-{name}-2-malloc"] = r
    print(f"{name:8} {'lethe*':10} {2:>2} {r['step_s']:8.2f} {r['tokens_per_s']:8.1f} {r['comm_s']:7.2f} "
          f"{r['rs_mb']:7.1f} {r['ag_mb']:7.1f} {r['opt_bytes']:12.0f} {12 * PSI[name] / 2:12.0f} "
          f"{r['grad_peak_mb']:8.1f} {r['peak_rss_mb']:11.0f}   (* LETHE_MALLOC_DEFAULT=1)")
    ds = json.loads((out / f"deepspeed-{name}.json").read_text().strip().splitlines()[-1])
    summary[f"deepspeed-{name}"] = ds
    print(f"{name:8} {'deepspeed':10} {ds['world']:>2} {ds['step_s']:8.2f} {ds['tokens_per_s']:8.1f} {'':>7} {'':>7} "
          f"{'':>7} {'':>12} {'':>12} {'':>8} {max(ds['peak_rss_mb_per_rank']):11.0f}")
    l2 = summary[f"lethe-{name}-2"]
    lm = summary[f"lethe-{name}-2-malloc"]
    ds_rss = max(ds['peak_rss_mb_per_rank'])
    print(f"{name:8} ratio lethe/DeepSpeed at N=2: {l2['tokens_per_s'] / ds['tokens_per_s']:.2f}x tokens/s, "
          f"peak RSS {l2['peak_rss_mb'] / ds_rss:.2f}x; with glibc's allocator "
          f"{lm['tokens_per_s'] / ds['tokens_per_s']:.2f}x, {lm['peak_rss_mb'] / ds_rss:.2f}x")
for name in PSI:
    save = [mb_per_s(l) for l in (out / f"lethe-{name}-1.log").read_text().splitlines() if "checkpoint " in l]
    load = [mb_per_s(l) for l in (out / f"lethe-{name}-1-resume.log").read_text().splitlines() if "resumed" in l]
    w, r = dd(f"dd-write-{name}.txt"), dd(f"dd-read-{name}.txt")
    summary[f"checkpoint-{name}"] = {"save_mb_s": save[-1], "load_mb_s": load[-1], "dd_write_mb_s": w, "dd_read_mb_s": r}
    cache = "from disk" if "warm" not in (out / "cache-state.txt").read_text() else "from the page cache"
    print(f"checkpoint {name} (loads {cache}): save {save[-1]:.0f} MB/s ({100 * save[-1] / w:.0f}% of dd write {w:.0f} MB/s), "
          f"load {load[-1]:.0f} MB/s ({100 * load[-1] / r:.0f}% of dd read {r:.0f} MB/s)")
(out / "summary.json").write_text(json.dumps(summary, indent=1))
