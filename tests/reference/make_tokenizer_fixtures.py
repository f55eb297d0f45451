#!/usr/bin/env python3
"""Writes the HF `tokenizers` oracle for tests/text/bpe_test.cpp: OUT/gpt2_tokenizer_ids.json.

The oracle tokenizer is built from the shared GPT-2 files exactly as the C++ one is meant to behave:
BPE.from_file(encoder.json, vocab.bpe), ByteLevel pre-tokenizer and decoder with add_prefix_space=False, and
<|endoftext|> as an added special token. A second copy without the added token gives the ids for
allow_special=false.

Contents:
  files:         {relative csv path: [{"row", "text", "ids"}]} for every row of validation_data/*.csv and
                 lambada.csv (column "text"), read with Python's csv module so the C++ CSV reader is checked too
  special_cases: [{"text", "ids_special", "ids_plain"}] texts with <|endoftext|> and long single pieces
  decode_cases:  [{"ids", "text", "text_skip_special"}] random id sequences, many ending mid-character, so
                 HF's U+FFFD replacement is pinned
Also OUT/gpt2_tokenizer_json/tokenizer.json: the oracle as HF serialises it, to test that loader.

Usage: make_tokenizer_fixtures.py --out DIR [--shared-data DIR]
(CTest runs it with --out $LETHE_FIXTURES/tokenizer; the gtest looks there and in $LETHE_FIXTURES itself.)
"""

import argparse
import csv
import json
import os
import random
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

EOT = "<|endoftext|>"
CSV_FILES = ["icu/validation_data/pile.csv", "icu/validation_data/wikitext.csv", "icu/lambada.csv"]


def build(tok_dir: Path, with_special: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE.from_file(str(tok_dir / "encoder.json"), str(tok_dir / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if with_special:
        tok.add_special_tokens([EOT])
    return tok


def read_texts(path: Path) -> list:
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("text")
    return [r[col] for r in rows[1:] if r]  # csv yields [] for blank lines; the C++ reader skips them


def special_texts() -> list:
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyz"
    long_word = "".join(rng.choice(letters) for _ in range(3000))
    return [
        EOT, EOT + EOT, "hello " + EOT, EOT + " world", "a  " + EOT + "  b", "x" + EOT + "y\n" + EOT + "\n",
        "<|endoftext", "<|endoftext|", "<<|endoftext|>>", "<|endoftext|>" * 3 + " tail",
        # Pieces longer than the C++ short-path limit (128 bytes) take the heap-based merge loop.
        "a" * 129, "a" * 1000, " " + "a" * 777 + " end", "-" * 2000, "=" * 130 + "\n", "0" * 513,
        " " * 300 + "x", "\n" * 200, long_word, " " + long_word[:200], "ab" * 400, "\u00e9" * 300,
        "\U0001F600" * 100, "x" + "\u0301" * 200,
    ]


def decode_cases(tok: Tokenizer, vocab_size: int) -> list:
    rng = random.Random(99)
    cases = [[], [50256], [157, 252], [157], [40, 50256, 1842], [8582, 248, 222], [248, 222], [8582, 248]]
    for _ in range(300):
        cases.append([rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))])
    for _ in range(200):  # byte tokens: dense in partial UTF-8 sequences
        cases.append([rng.choice(range(94, 256)) for _ in range(rng.randint(1, 8))])
    return [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
             "text_skip_special": tok.decode(ids, skip_special_tokens=True)} for ids in cases]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="directory to write gpt2_tokenizer_ids.json into")
    default_shared = os.environ.get("LETHE_SHARED_DATA",
                                    str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--shared-data", type=Path, default=Path(default_shared))
    args = ap.parse_args()

    tok_dir = args.shared_data / "gpt2_tokenizer"
    if not (tok_dir / "encoder.json").exists():
        # Nothing to compare against; the C++ tests see no fixture and GTEST_SKIP with their own message.
        print(f"shared data not found: {tok_dir}/encoder.json (set LETHE_SHARED_DATA); no fixture written",
              file=sys.stderr)
        return 0
    special, plain = build(tok_dir, True), build(tok_dir, False)
    out = {
        "oracle": f"tokenizers {tokenizers.__version__}: BPE.from_file(encoder.json, vocab.bpe) + "
                  "ByteLevel(add_prefix_space=False) pre-tokenizer/decoder, <|endoftext|> added as special",
        "files": {},
        "special_cases": [],
        "decode_cases": decode_cases(special, special.get_vocab_size()),
    }
    for rel in CSV_FILES:
        texts = read_texts(args.shared_data / rel)
        encs = special.encode_batch(texts, add_special_tokens=False)
        out["files"][rel] = [{"row": i, "text": t, "ids": e.ids} for i, (t, e) in enumerate(zip(texts, encs))]
    for text in special_texts():
        out["special_cases"].append({"text": text, "ids_special": special.encode(text).ids,
                                     "ids_plain": plain.encode(text).ids})

    (args.out / "gpt2_tokenizer_json").mkdir(parents=True, exist_ok=True)
    special.save(str(args.out / "gpt2_tokenizer_json" / "tokenizer.json"))
    path = args.out / "gpt2_tokenizer_ids.json"
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)
    n_rows = sum(len(v) for v in out["files"].values())
    print(f"wrote {path}: {n_rows} csv rows, {len(out['special_cases'])} special cases, "
          f"{len(out['decode_cases'])} decode cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
