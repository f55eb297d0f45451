#!/usr/bin/env python3
"""HF `tokenizers` peer of bench_tokenizer.cpp: single thread, one encode() per row of each CSV's "text" column,
fresh tokenizer per pass (cold cache), fastest pass reported, same JSON line. A TOFU .json (JSON lines)
contributes its questions and answers. DIR with a tokenizer.json is loaded from that file.

usage: TOKENIZERS_PARALLELISM=false bench_tokenizer_peer.py [--tokenizer DIR] [--passes N] FILE.csv|FILE.json...
"""

import argparse
import csv
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # before tokenizers is imported
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402


def load(tok_dir: str) -> Tokenizer:
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        return Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    tok = Tokenizer(models.BPE.from_file(os.path.join(tok_dir, "encoder.json"), os.path.join(tok_dir, "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="../shared/data/gpt2_tokenizer")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    csv.field_size_limit(sys.maxsize)
    texts = []
    for path in args.files:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        texts += [row["question"], row["answer"]]
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
        col = rows[0].index("text")
        texts += [r[col] for r in rows[1:]]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    best, tokens = float("inf"), 0
    for _ in range(max(1, args.passes)):
        tok = load(args.tokenizer)
        start = time.perf_counter()
        tokens = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"bytes": n_bytes, "seconds": round(best, 6), "mb_per_s": round(n_bytes / best / 1e6, 3),
                      "rows": len(texts), "tokens": tokens}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
