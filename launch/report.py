#!/usr/bin/env python3
"""Writes a Markdown report of one `lethe unlearn` run, with PNG plots beside it.

Reads RUN_DIR/metrics.h5 (/train and /epoch series, /samples/epoch-NNNN per-pair tables, NNNN = the epoch), RUN_DIR/unlearn.json,
RUN_DIR/utility.json when the run evaluated the utility suite (a before / after table of its columns and tasks) and
two `lethe eval --json` results (BEFORE = the model before unlearning, AFTER = RUN_DIR/final). The report holds a
before / after table, the run summary, a per-epoch table, the pairs each validation switched off or back on, a few
generations at epoch 0 and at the last epoch, and three plots written to the report's folder:
  el_ma.png         EL and MA per epoch (dashed lines: the --el and --acc stop thresholds, when given)
  loss_terms.png    per-step loss, forget_ce, neighbour_ce and kl (series that are all NaN are left out)
  active_pairs.png  pairs still being unlearned after each validation

Usage: report.py --run RUN_DIR --before BEFORE.json --after AFTER.json --out REPORT.md [--title T]
                 [--note TEXT ...] [--acc A] [--el E]
Exit 0 = report written, 2 = an input is missing or malformed (the message says which).
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

EPOCH_NEEDED = ["el", "ma", "bleu", "active", "val_loss", "seconds"]
LOSS_TERMS = ["loss", "forget_ce", "neighbour_ce", "kl"]
COMPARED = [("forget", "el", None), ("forget", "ma", "forget MA"), ("forget", "bleu", "forget BLEU"),
            ("forget", "distinct", "forget distinct"), ("forget", "entropy", "forget entropy"),
            ("forget", "loss", "forget LM loss"), ("retain", "ma", "retain MA"), ("retain", "loss", "retain loss"),
            ("heldout", "ma", "heldout MA"), ("heldout", "el", "heldout EL")]
TEXTS, SHOWN_PAIRS, TEXT_CHARS = ("candidates", "references"), 4, 200


class InputError(Exception):
    """An input file is missing or does not have the expected layout."""


def load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{what} {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InputError(f"{what} {path}: expected a JSON object")
    return data


def read_group(f: h5py.File, group: str, path: Path) -> dict:
    """All 1-D series of /<group> as numpy arrays, checked to have the length of /<group>/step."""
    if group not in f or "step" not in f[group]:
        raise InputError(f"{path}: no /{group}/step (not a metrics.h5 written by lethe unlearn?)")
    series = {name: np.asarray(ds[()]) for name, ds in f[group].items() if isinstance(ds, h5py.Dataset)}
    n = len(series["step"])
    bad = [name for name, v in series.items() if v.ndim != 1 or len(v) != n]
    if bad:
        raise InputError(f"{path}: /{group} series {bad} are not 1-D of length {n} like /{group}/step")
    return series


def read_metrics(path: Path) -> tuple:
    """(train series, epoch series, {epoch: per-pair table}) from metrics.h5; retries while a writer holds it."""
    if not path.is_file():
        raise InputError(f"metrics file not found: {path}")
    for attempt in range(5):
        try:
            with h5py.File(path, "r") as f:
                train, epoch = read_group(f, "train", path), read_group(f, "epoch", path)
                samples = {}
                for name, g in f.get("samples", {}).items():
                    table = {k: np.asarray(ds[()]) for k, ds in g.items() if k not in TEXTS}
                    table.update({k: json.loads(g[k][()].tobytes().decode()) for k in TEXTS})
                    if any(len(table[k]) != len(table["doc_id"]) for k in ("flag", "el") + TEXTS):
                        raise ValueError(f"/samples/{name}: columns of unequal length")
                    samples[int(name.split("-")[-1])] = table
            break
        except OSError as e:  # a flush in progress holds the file lock: retry; anything else is fatal
            if attempt == 4 or "lock" not in str(e).lower():
                raise InputError(f"cannot read {path}: {e}") from e
            time.sleep(1.0)
        except (KeyError, ValueError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(f"{path} is malformed: {e}") from e
    missing = [k for k in EPOCH_NEEDED if k not in epoch]
    if missing:
        raise InputError(f"{path}: /epoch lacks {missing}")
    return train, epoch, samples


def num(v, digits: int = 4) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def before_after(before: dict, after: dict) -> list:
    el_n = before.get("el_n", after.get("el_n", "n"))
    lines = ["| metric | before | after | change |", "|---|---|---|---|"]
    for section, key, label in COMPARED:
        b, a = before.get(section, {}).get(key), after.get(section, {}).get(key)
        if not isinstance(b, (int, float)) or not isinstance(a, (int, float)):
            continue
        change = "—" if math.isnan(a - b) else f"{a - b:+.4f}"
        lines.append(f"| {label or f'forget EL_{el_n}'} | {num(b)} | {num(a)} | {change} |")
    return lines


def flag_changes(samples: dict) -> list:
    lines, epochs = [], sorted(samples)
    for prev, cur in zip(epochs, epochs[1:]):
        was = dict(zip(samples[prev]["doc_id"].astype(int), samples[prev]["flag"]))
        now = dict(zip(samples[cur]["doc_id"].astype(int), samples[cur]["flag"]))
        off = [d for d, f in now.items() if f == 0 and was.get(d) == 1]
        on = [d for d, f in now.items() if f == 1 and was.get(d) == 0]
        lines.append(f"- epoch {cur}: forgotten {', '.join(map(str, off)) or 'none'}; re-added "
                     f"{', '.join(map(str, on)) or 'none'}" if off or on else f"- epoch {cur}: no change")
    return lines or ["No validation after epoch 0."]


def quoted(label: str, text: str) -> list:
    text = text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"
    fence = "```"
    while fence in text:  # a longer fence keeps the text verbatim
        fence += "`"
    return [f"{label}:", "", fence, text, fence, ""]


def generations(samples: dict) -> list:
    if 0 not in samples or not samples[0]["candidates"]:
        return ["No per-pair table for epoch 0."]
    e0, last = samples[0], samples[max(samples)]
    where = {d: i for i, d in enumerate(last["doc_id"].astype(int))}
    lines = []
    for i, doc in enumerate(e0["doc_id"].astype(int)[:SHOWN_PAIRS]):
        j = where.get(doc)
        el_last = f" → {num(float(last['el'][j]))} at epoch {max(samples)}" if j is not None else ""
        lines += [f"**doc {doc}** (EL {num(float(e0['el'][i]))} at epoch 0{el_last})", ""]
        lines += quoted("reference suffix", e0["references"][i]) + quoted("candidate, epoch 0", e0["candidates"][i])
        if j is not None and max(samples) != 0:
            lines += quoted(f"candidate, epoch {max(samples)}", last["candidates"][j])
    return lines


def figure(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def save(fig, ax, path: Path) -> None:
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plots(train: dict, epoch: dict, out_dir: Path, acc, el) -> list:
    """Writes the PNGs; returns the names of those written."""
    x, terms = epoch["step"], [t for t in LOSS_TERMS if t in train and not np.all(np.isnan(train[t]))]
    fig, ax = figure("EL and MA on the forget set", "epoch", "score")
    ax.plot(x, epoch["el"], "o-", color="C0", label="EL")
    ax.plot(x, epoch["ma"], "s-", color="C1", label="MA")
    if el is not None:
        ax.axhline(el, color="C0", ls="--", lw=1, label=f"EL threshold {el:g}")
    if acc is not None:
        ax.axhline(acc, color="C1", ls="--", lw=1, label=f"MA threshold {acc:g}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    save(fig, ax, out_dir / "el_ma.png")
    written = ["el_ma.png"] + (["loss_terms.png"] if terms else [])
    if terms:
        fig, ax = figure("Loss terms per step", "optimizer step", "value")
        for t in terms:
            ax.plot(train["step"], train[t], ".-", lw=1.2, ms=4, label=t)  # markers: points between NaNs show
        ax.xaxis.get_major_locator().set_params(integer=True)
        save(fig, ax, out_dir / "loss_terms.png")
    fig, ax = figure("Pairs still being unlearned", "epoch", "active pairs")
    ax.step(x, epoch["active"], "o-", where="post", color="C2")
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    save(fig, ax, out_dir / "active_pairs.png")
    return written + ["active_pairs.png"]


def utility_table(path: Path) -> list:
    """Before / after table of RUN_DIR/utility.json (lethe unlearn with utility.at_start / every / at_end): the
    paper columns, then each task's headline metric with its standard error. One run gives one column."""
    doc = load_json(path, "utility results")
    epochs = doc.get("epochs")
    if not isinstance(epochs, dict) or not epochs or not all(isinstance(v, dict) for v in epochs.values()):
        raise InputError(f"{path}: no runs under \"epochs\" (not written by lethe unlearn?)")
    e0, e1 = min(epochs, key=int), max(epochs, key=int)
    first, last = epochs[e0], epochs[e1]
    pair = e0 != e1
    head = "| metric | before | after | change |" if pair else f"| metric | epoch {e0} |"
    lines = [f"Suite `{doc.get('suite', '?')}`; " + (f"before = epoch {e0}, after = epoch {e1}." if pair else
             f"one run (epoch {e0})."), "", head, "|---|---|---|---|" if pair else "|---|---|"]

    def row(label, b, a):
        if not pair:
            return f"| {label} | {b} |"
        return f"| {label} | {b} | {a} |"

    def delta(b, a):
        return f"{a - b:+.4f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "—"

    for k, b in first.get("summary", {}).items():
        a = last.get("summary", {}).get(k)
        lines.append(row(f"**{k}**", num(b), num(a)) + (f" {delta(b, a)} |" if pair else ""))
    for name, t in first.get("tasks", {}).items():
        key = t.get("headline", "acc")
        u = last.get("tasks", {}).get(name, {})
        b, a = t.get(key), u.get(key)
        se = lambda d: f" ± {num(d[key + '_stderr'])}" if isinstance(d.get(key + "_stderr"), (int, float)) else ""
        lines.append(row(f"{name} {key} (n={t.get('n', '?')})", f"{num(b)}{se(t)}", f"{num(a)}{se(u)}") +
                     (f" {delta(b, a)} |" if pair else ""))
    return lines


def report(args) -> str:
    run = Path(args.run)
    if not run.is_dir():
        raise InputError(f"run folder not found: {run}")
    train, epoch, samples = read_metrics(run / "metrics.h5")
    summary = load_json(run / "unlearn.json", "run summary")
    before, after = load_json(Path(args.before), "--before"), load_json(Path(args.after), "--after")
    for what, d in (("--before", before), ("--after", after)):
        if not isinstance(d.get("forget"), dict):
            raise InputError(f"{what}: no \"forget\" object (not the output of lethe eval --json?)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = plots(train, epoch, out.parent, args.acc, args.el)
    md = [f"# {args.title}", ""]
    for note in args.note:
        md += [note, ""]
    md += ["## Before / after", "", f"Model `{before.get('model', '?')}` → `{after.get('model', '?')}`, dataset "
           f"`{before.get('dataset', '?')}`, EL variant {before.get('el_variant', '?')}.", ""]
    md += before_after(before, after) + [""]
    config = run / "config.resolved.yaml"
    link = f"[config.resolved.yaml]({os.path.relpath(config, out.parent)})" if config.is_file() else "not found"
    md += ["## Run", ""] + [f"- {k}: {summary.get(key, '?')}" for k, key in
                            (("epochs", "epochs"), ("stop reason", "stop_reason"), ("steps", "steps"),
                             ("pairs", "pairs"), ("active at the end", "active"))]
    md += [f"- resolved config: {link}", ""]
    if (run / "utility.json").is_file():
        md += ["## Utility (downstream suite)", ""] + utility_table(run / "utility.json") + [""]
    md += ["## Per epoch", "", "| epoch | EL | MA | BLEU | BERT F1 | active | val loss | seconds |",
           "|---|---|---|---|---|---|---|---|"]
    for i, e in enumerate(epoch["step"]):
        bert = num(float(epoch["bert_f1"][i])) if "bert_f1" in epoch else "—"
        md.append(f"| {int(e)} | {num(float(epoch['el'][i]))} | {num(float(epoch['ma'][i]))} | "
                  f"{num(float(epoch['bleu'][i]))} | {bert} | {int(epoch['active'][i])} | "
                  f"{num(float(epoch['val_loss'][i]))} | {num(float(epoch['seconds'][i]), 1)} |")
    md += ["", "## Flag changes", ""] + flag_changes(samples)
    md += ["", "## Generations", ""] + generations(samples)
    md += ["## Plots", ""] + [f"![{p[:-4]}]({p})\n" for p in pngs]
    out.write_text("\n".join(md).rstrip() + "\n")
    return str(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="the unlearn run folder (metrics.h5, unlearn.json)")
    ap.add_argument("--before", required=True, help="lethe eval --json of the model before unlearning")
    ap.add_argument("--after", required=True, help="lethe eval --json of the unlearned model")
    ap.add_argument("--out", required=True, help="REPORT.md; the PNGs go to the same folder")
    ap.add_argument("--title", default="Unlearning report")
    ap.add_argument("--note", action="append", default=[], help="a paragraph under the title (repeatable)")
    ap.add_argument("--acc", type=float, help="MA stop threshold, drawn on el_ma.png")
    ap.add_argument("--el", type=float, help="EL stop threshold, drawn on el_ma.png")
    args = ap.parse_args()
    try:
        print(f"report: wrote {report(args)}")
    except InputError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
