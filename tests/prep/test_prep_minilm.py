"""`lethe prep` with the real all-MiniLM-L6-v2 (ICU's data_prep.py setting: decoded tokens 100..199 with the
transformers-4.x clean-up, mean pooling, normalised, exact L2): for each of ICU's five target sets exp0..exp4 the
neighbour ids and distances equal an exact numpy search on the same embeddings, ties included (lowest row first,
FAISS IndexFlatL2's order).

Embedding all 15,000 rows takes minutes per run on a 2-core CPU, so the source here is a 1,000-row slice of
train_dataset.npy: every target row of exp0..exp4 (631) and the first 369 other rows, in their original order, with
the CSVs' doc_ids renumbered into the slice. exp0 embeds the slice once into prep.embeddings_cache; exp1..exp4 read
the cache (the test checks they did). The cached embeddings of the first rows are compared with transformers.

Run by CTest (prep.minilm). Needs the MiniLM folder launch/setup.sh unpacks (LETHE_MODELS, default
~/.cache/lethe/models).
"""
import csv
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reference"))
from make_minilm_fixtures import clean_up_tokenization, gpt2_decoder, mean_pooled  # noqa: E402

BIN = os.environ.get("LETHE_BIN", "build/lethe")
ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("LETHE_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODELS = pathlib.Path(os.environ.get("LETHE_MODELS", pathlib.Path.home() / ".cache" / "lethe" / "models"))
MINILM = MODELS / "all-MiniLM-L6-v2"
SOURCE = SHARED / "lm_extraction" / "train_dataset.npy"
TOKENIZER = SHARED / "gpt2_tokenizer"


def exp_ids(i):
    with open(SHARED / "icu" / "exp" / f"exp{i}" / f"lm_extraction_128_{i}.csv", newline="") as f:
        return sorted(int(r["doc_id"]) for r in csv.DictReader(f))


class PrepMiniLm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not (MINILM / "modules.json").is_file():
            raise unittest.SkipTest(f"{MINILM} absent: run launch/setup.sh")
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="lethe-minilm-"))
        rows = np.load(SOURCE).astype(np.int64)
        targets = sorted({d for i in range(5) for d in exp_ids(i)})
        others = [r for r in range(len(rows)) if r not in set(targets)][:1000 - len(targets)]
        cls.keep = sorted(targets + others)  # slice row -> original row
        new_id = {orig: k for k, orig in enumerate(cls.keep)}
        cls.rows = rows[cls.keep]
        np.save(cls.tmp / "slice.npy", cls.rows.astype(np.uint16))
        cls.targets = []
        for i in range(5):
            ids = [new_id[d] for d in exp_ids(i)]
            with open(cls.tmp / f"exp{i}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["doc_id"])
                w.writerows([[d] for d in ids])
            cls.targets.append(sorted(ids))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def prep(self, i):
        args = {"prep.source": self.tmp / "slice.npy", "prep.forget_csv": self.tmp / f"exp{i}.csv",
                "prep.embedder": "bert", "prep.embedder_path": MINILM, "tokenizer.path": TOKENIZER,
                "tokenizer.decode_cleanup": "hf4", "prep.embeddings_cache": self.tmp / "embeddings.h5",
                "prep.batch_size": 32, "prep.output_dir": self.tmp / "datasets", "prep.name": f"exp{i}"}
        cmd = [BIN, "prep"] + [x for k, v in args.items() for x in ("--set", f"{k}={v}")]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout + r.stderr

    def test_neighbours_of_exp0_to_exp4_equal_exact_search_on_the_embeddings(self):
        logs = [self.prep(i) for i in range(5)]
        self.assertNotIn("read from", logs[0])
        for log in logs[1:]:
            self.assertIn("read from", log)  # the cache, not a second embedding pass
        with h5py.File(self.tmp / "embeddings.h5", "r") as f:
            e = f["embeddings"][()].astype(np.float64)
        self.assertEqual(e.shape, (len(self.rows), 384))

        # The cache holds what transformers computes (first 48 rows; tests/prep/minilm_test.cpp covers more).
        gpt2 = gpt2_decoder(TOKENIZER)
        texts = [clean_up_tokenization(t) for t in gpt2.decode_batch(self.rows[:48, 100:].tolist(),
                                                                     skip_special_tokens=False)]
        want = mean_pooled(MINILM, texts, batch=48).double().numpy()
        np.testing.assert_allclose(e[:48], want, atol=1e-5, rtol=0)

        for i in range(5):
            with h5py.File(self.tmp / "datasets" / f"exp{i}" / "pairs.h5", "r") as f:
                p = {k: f[k][()] for k in ["forget/ids", "neighbours/ids", "neighbours/distances", "neighbours/tokens"]}
            targets = self.targets[i]
            np.testing.assert_array_equal(p["forget/ids"], targets)
            pool = np.setdiff1d(np.arange(len(self.rows)), targets)
            q = e[targets]
            d = ((q ** 2).sum(1)[:, None] + (e[pool] ** 2).sum(1)[None, :] - 2 * q @ e[pool].T).clip(min=0)
            order = np.argsort(d, axis=1, kind="stable")[:, :10]  # equal distances: the lower row first
            np.testing.assert_array_equal(p["neighbours/ids"], pool[order], err_msg=f"exp{i}")
            np.testing.assert_allclose(p["neighbours/distances"], np.take_along_axis(d, order, 1), atol=1e-9)
            np.testing.assert_array_equal(p["neighbours/tokens"], self.rows[pool[order[:, 0]]])


if __name__ == "__main__":
    unittest.main()
