"""End-to-end tests of `lethe eval --utility` against the oracles of tests/reference/make_utility_fixtures.py:

- lm-evaluation-harness (HF backend): per-request log-likelihoods (<= 1e-4), greedy flags, acc / acc_norm
  predictions and the task metrics on PIQA, ARC-Easy and WinoGrande slices (configs/utility/lm-eval.yaml's
  definitions, with lm-eval's window of max_length + 1, so long PIQA requests are left-truncated as lm-eval does);
- the transcription of ICU's valid.py (tests/reference/icu_valid_reference.py): MathQA, COPA, PubMedQA,
  LAMBADA, dialogue F1 (greedy texts exactly) and perplexity windows, plus contexts and prompts beyond 512 tokens;
- the same per-example numbers, bit for bit, at mpirun -np 1, 2 and 3;
- bad input: missing task file, wrong fields, empty task, label out of range, bad suite -> exit 2 naming the task,
  file and line, nothing written; with --keep-going the other tasks still run.

Run by CTest with LETHE_BIN, LETHE_FIXTURES and LETHE_SHARED_DATA set; skips when the shared data is absent.
"""
import json
import os
import pathlib
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

BIN = os.environ.get("LETHE_BIN", "build/lethe")
ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("LETHE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = pathlib.Path(os.environ.get("LETHE_FIXTURES", ROOT / "build" / "test-fixtures")) / "utility"
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_oob_tcp_if_include="lo", OMPI_MCA_rmaps_base_oversubscribe="1")
TOL = 1e-4


def run(args, n=0, timeout=600):
    cmd = [BIN, *map(str, args)]
    if n:
        cmd = ["mpirun", "-np", str(n), "--bind-to", "none", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=MPI_ENV, timeout=timeout)


def table(path, task):
    """Per-example table of one task: numeric columns as arrays, string columns as decoded JSON lists."""
    out = {}
    with h5py.File(path, "r") as f:
        for k, ds in f[f"utility/{task}"].items():
            v = ds[()]
            out[k] = json.loads(bytes(v).decode()) if ds.dtype == np.uint8 else v
    return out


def lls(t):
    k = sum(1 for c in t if c.startswith("ll_"))
    return np.stack([t[f"ll_{j}"] for j in range(k)], 1)


def write_suite(path, header, tasks):
    lines = [f"{k}: {json.dumps(v)}" for k, v in header.items()] + ["tasks:"]
    lines += [f"  - {json.dumps(t)}" for t in tasks]
    path.write_text("\n".join(lines) + "\n")


@unittest.skipUnless((SHARED / "downstream").is_dir(), f"shared data not found at {SHARED}")
class UtilityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="lethe-utility-")
        cls.dir = pathlib.Path(cls.tmp.name)
        cls.model = FIXTURES / "model"
        cls.icu = json.loads((FIXTURES / "icu.json").read_text())
        cls.lm = json.loads((FIXTURES / "lm_eval.json").read_text())
        n, nd = cls.icu["limit"], cls.icu["dialogue_limit"]
        # The oracle's long examples (> 512 tokens) as task files of lethe's formats.
        with open(cls.dir / "long_cls.jsonl", "w") as f:
            for it in cls.icu["long"]["classification"]:
                assert all(c.startswith(" ") for c in it["choices"])
                f.write(json.dumps({"query": it["context"], "choices": [c[1:] for c in it["choices"]],
                                    "gold": it["gold"]}) + "\n")
        (cls.dir / "long_dialogue.json").write_text(json.dumps(
            {"text": {str(i): d["turns"] for i, d in enumerate(cls.icu["long"]["dialogue"])}}))
        write_suite(cls.dir / "icu.yaml", {"window": 512, "encoding": "separate", "batch_size": 5,
                                           "data_dir": str(SHARED)}, [
            {"name": "mathqa", "format": "mathqa", "file": "downstream/mathqa_dev_first500.jsonl",
             "choice": "{choice}", "limit": n, "group": "cls"},
            {"name": "copa", "format": "copa_mosaic", "file": "downstream/copa_validation_llmfoundry.jsonl",
             "limit": n, "group": "cls"},
            {"name": "pubmedqa", "format": "pubmedqa", "file": "icu/pubmed_qa.csv", "limit": n, "group": "cls"},
            {"name": "lambada", "format": "lambada", "file": "icu/lambada.csv", "limit": n, "group": "cls"},
            {"name": "wizard_of_wikipedia", "format": "dialogue", "file": "icu/validation_data/wizard_of_wikipedia.json",
             "limit": nd, "group": "dia"},
            {"name": "empathetic_dialogues", "format": "dialogue",
             "file": "icu/validation_data/empathetic_dialogues.json", "limit": nd, "group": "dia"},
            {"name": "pile", "format": "text", "file": "icu/validation_data/pile.csv", "limit": n, "column": "Pile"},
            {"name": "wikitext", "format": "text", "file": "icu/validation_data/wikitext.csv", "limit": n,
             "column": "Wikitext"},
            {"name": "long_cls", "format": "mosaic", "file": str(cls.dir / "long_cls.jsonl")},
            {"name": "long_dialogue", "format": "dialogue", "file": str(cls.dir / "long_dialogue.json")},
        ])
        write_suite(cls.dir / "lm.yaml", {"window": cls.lm["max_length"] + 1, "encoding": "joint", "batch_size": 7,
                                          "data_dir": str(SHARED)}, [
            {"name": "piqa", "format": "piqa", "file": "downstream/piqa_valid_first500.jsonl",
             "labels": "downstream/piqa_valid-labels_first500.lst", "prompt": "Question: {context}\nAnswer:",
             "limit": cls.lm["limit"]},
            {"name": "arc_easy", "format": "arc_mosaic", "file": "downstream/arc_easy_test_first500_llmfoundry.jsonl",
             "prompt": "Question: {context}\nAnswer:", "limit": cls.lm["limit"]},
            {"name": "winogrande", "format": "winogrande_partial", "file": "downstream/winogrande_dev_first500.jsonl",
             "limit": cls.lm["limit"]},
        ])
        cls.out = {}
        for suite in ["icu", "lm"]:
            for n_ranks in [0, 2, 3]:
                d = cls.dir / f"{suite}-np{n_ranks}"
                d.mkdir()
                # One thread per rank everywhere: the GEMMs then sum in the same order at every rank count,
                # so batches that do not depend on N give bit-identical numbers.
                r = run(["eval", "--model", cls.model, "--suite", cls.dir / f"{suite}.yaml", "--metrics",
                         d / "utility.h5", "--out", d / "utility.json", "--set", "runtime.threads=1"], n=n_ranks)
                assert r.returncode == 0, r.stderr[-3000:]
                cls.out[suite, n_ranks] = d

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def h5(self, suite, task, n=0):
        return table(self.out[suite, n] / "utility.h5", task)

    def result(self, suite, n=0):
        return json.loads((self.out[suite, n] / "utility.json").read_text())["utility"]

    def assert_choice(self, got, ref, name):
        mine, theirs = lls(got), np.array([r["ll"] for r in ref])
        self.assertEqual(mine.shape, theirs.shape, name)
        self.assertLess(np.abs(mine - theirs).max(), TOL, name)
        for i, r in enumerate(ref):  # same argmax, unless two options are within the tolerance of each other
            top = np.sort(theirs[i])[::-1]
            if len(top) < 2 or top[0] - top[1] > 2 * TOL:
                self.assertEqual(int(got["pred"][i]), int(np.argmax(theirs[i])), f"{name} example {i}")
            self.assertEqual(int(got["gold"][i]), r["gold"], f"{name} example {i}")

    # ---- lm-eval parity ----------------------------------------------------------------------------------
    def test_lm_eval_loglikelihoods_and_predictions(self):
        res = self.result("lm")["tasks"]
        for task in ["piqa", "arc_easy", "winogrande"]:
            ref, got = self.lm[task], self.h5("lm", task, 0)
            self.assert_choice(got, ref, task)
            k = lls(got).shape[1]
            greedy = np.stack([got[f"greedy_{j}"] for j in range(k)], 1)
            np.testing.assert_array_equal(greedy, np.array([r["greedy"] for r in ref]), task)
            np.testing.assert_array_equal(got["correct"], [r["acc"] for r in ref], task)
            norm = [(i, r["acc_norm"]) for i, r in enumerate(ref) if r["acc_norm"] is not None]
            for i, v in norm:
                self.assertEqual(got["correct_norm"][i], v, f"{task} acc_norm example {i}")
            m = self.lm["metrics"][task]
            self.assertAlmostEqual(res[task]["acc"], m["acc"], places=12)
            self.assertAlmostEqual(res[task]["acc_stderr"], m["acc_stderr"], places=9)
            if m.get("acc_norm") is not None:
                self.assertAlmostEqual(res[task]["acc_norm"], m["acc_norm"], places=12)
        self.assertGreater(sum(self.lm["truncated_requests"].values()), 0, "the window must truncate some request")

    # ---- ICU's valid.py ----------------------------------------------------------------------------------
    def test_icu_classification(self):
        for task in ["mathqa", "copa", "pubmedqa"]:
            self.assert_choice(self.h5("icu", task), self.icu[task], task)
        self.assert_choice(self.h5("icu", "long_cls"), self.icu["long"]["classification"], "long_cls")

    def test_icu_lambada(self):
        got, ref = self.h5("icu", "lambada"), self.icu["lambada"]
        self.assertLess(np.abs(got["ll"] - np.array([r["ll"] for r in ref])).max(), TOL)
        np.testing.assert_array_equal(got["correct"], [r["correct"] for r in ref])
        np.testing.assert_allclose(got["f1"], [r["f1"] for r in ref], atol=1e-12)
        res = self.result("icu")["tasks"]["lambada"]
        self.assertAlmostEqual(res["loss"], -np.mean([r["ll"] for r in ref]), delta=TOL)

    def test_icu_dialogue(self):
        for task, ref in [("wizard_of_wikipedia", self.icu["wizard_of_wikipedia"]),
                          ("empathetic_dialogues", self.icu["empathetic_dialogues"]),
                          ("long_dialogue", self.icu["long"]["dialogue"])]:
            got = self.h5("icu", task)
            self.assertEqual(got["target"], [r["target"] for r in ref], task)
            self.assertEqual(got["generation"], [r["text"] for r in ref], task)
            np.testing.assert_array_equal(got["new_tokens"], [len(r["tokens"]) for r in ref])
            np.testing.assert_allclose(got["f1"], [r["f1"] for r in ref], atol=1e-12)

    def test_icu_perplexity(self):
        res = self.result("icu")
        for task, column in [("pile", "Pile"), ("wikitext", "Wikitext")]:
            got, ref = self.h5("icu", task), self.icu[task]
            self.assertEqual(len(got["loss"]), len(ref["window_losses"]), task)
            self.assertLess(np.abs(got["loss"] - np.array(ref["window_losses"])).max(), TOL, task)
            self.assertEqual(int(got["tokens"].sum()), ref["n_tokens"], task)
            self.assertAlmostEqual(res["summary"][column] / ref["ppl"], 1.0, delta=1e-4)

    def test_summary_columns(self):
        res = self.result("icu")
        tasks, summary = res["tasks"], res["summary"]
        cls = np.mean([tasks[t]["acc"] for t in ["mathqa", "copa", "pubmedqa", "lambada"]])
        self.assertAlmostEqual(summary["Cls Avg"], cls, places=12)
        dia = np.mean([tasks[t]["f1"] for t in ["wizard_of_wikipedia", "empathetic_dialogues"]])
        self.assertAlmostEqual(summary["Dia Avg"], dia, places=12)
        for t in ["mathqa", "copa", "pubmedqa"]:  # acc and its stderr from the per-example rows
            c = self.h5("icu", t)["correct"]
            self.assertAlmostEqual(tasks[t]["acc"], c.mean(), places=12)
            self.assertAlmostEqual(tasks[t]["acc_stderr"], c.std(ddof=1) / np.sqrt(len(c)), places=12)

    # ---- sharding ----------------------------------------------------------------------------------------
    def test_same_numbers_at_1_2_3_ranks(self):
        for suite in ["icu", "lm"]:
            base = self.result(suite, 0)
            with h5py.File(self.out[suite, 0] / "utility.h5", "r") as f:
                tasks = list(f["utility"].keys())
            for n in [2, 3]:
                other = self.result(suite, n)
                for t in tasks:
                    a, b = self.h5(suite, t, 0), self.h5(suite, t, n)
                    self.assertEqual(sorted(a), sorted(b))
                    for k in a:
                        if isinstance(a[k], list):
                            self.assertEqual(a[k], b[k], f"{suite} {t} {k} np{n}")
                        else:
                            np.testing.assert_array_equal(a[k], b[k], f"{suite} {t} {k} np{n}")
                    ma = {k: v for k, v in base["tasks"][t].items() if k != "seconds"}
                    mb = {k: v for k, v in other["tasks"][t].items() if k != "seconds"}
                    self.assertEqual(ma, mb, f"{suite} {t} np{n}")
                self.assertEqual(base["summary"], other["summary"])

    # ---- bad input ---------------------------------------------------------------------------------------
    def bad(self, name, tasks, extra=()):
        suite = self.dir / f"bad-{name}.yaml"
        write_suite(suite, {"data_dir": str(SHARED)}, tasks)
        out = self.dir / f"bad-{name}.json"
        r = run(["eval", "--model", self.model, "--suite", suite, "--out", out, *extra])
        return r, out

    def test_bad_input(self):
        d = self.dir
        (d / "empty.jsonl").write_text("")
        (d / "fields.jsonl").write_text(json.dumps({"goal": "g", "sol1": "a", "sol2": "b", "label": 0}) + "\n" +
                                        json.dumps({"goal": "g", "sol1": "a", "label": 1}) + "\n")
        (d / "range.jsonl").write_text(json.dumps({"query": "Question: q", "choices": ["a", "b"], "gold": 0}) + "\n" +
                                       "\n" + json.dumps({"query": "Question: q", "choices": ["a", "b"], "gold": 5}) + "\n")
        (d / "broken.jsonl").write_text('{"goal": "g", "sol1": \n')
        cases = {
            "missing": ({"name": "ghost", "format": "piqa", "file": str(d / "nope.jsonl")}, ["ghost", "nope.jsonl"]),
            "fields": ({"name": "fields", "format": "piqa", "file": str(d / "fields.jsonl")},
                       ["fields", "fields.jsonl line 2", "sol2"]),
            "empty": ({"name": "empty", "format": "arc_mosaic", "file": str(d / "empty.jsonl")},
                      ["empty", "empty.jsonl", "no examples"]),
            "range": ({"name": "range", "format": "arc_mosaic", "file": str(d / "range.jsonl")},
                      ["range", "range.jsonl line 3", "out of range"]),
            "json": ({"name": "broken", "format": "piqa", "file": str(d / "broken.jsonl")},
                     ["broken", "broken.jsonl line 1", "JSON"]),
            "format": ({"name": "fmt", "format": "nonsense", "file": "x"}, ["tasks[0] (fmt)", "format 'nonsense'"]),
            "labels": ({"name": "lab", "format": "piqa", "file": "downstream/piqa_valid_first500.jsonl",
                        "labels": str(d / "range.jsonl")}, ["lab", "range.jsonl line 1", "must be 0 or 1"]),
        }
        for name, (task, needles) in cases.items():
            r, out = self.bad(name, [task])
            self.assertEqual(r.returncode, 2, f"{name}: {r.stderr[-2000:]}")
            for s in needles:
                self.assertIn(s, r.stderr, f"{name}: expected {s!r} in: {r.stderr[-2000:]}")
            self.assertFalse(out.exists(), f"{name}: nothing may be written")
        # An unknown --tasks name lists what the suite has.
        r = run(["eval", "--model", self.model, "--suite", d / "lm.yaml", "--tasks", "piqa,nope"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("'nope' is not in", r.stderr)
        self.assertIn("arc_easy", r.stderr)

    def test_keep_going_runs_the_other_tasks(self):
        good = {"name": "copa", "format": "copa_mosaic", "file": "downstream/copa_validation_llmfoundry.jsonl",
                "limit": 5}
        bad = {"name": "ghost", "format": "piqa", "file": str(self.dir / "nope.jsonl")}
        r, out = self.bad("keep", [bad, good], ["--keep-going"])
        self.assertEqual(r.returncode, 2, r.stderr[-2000:])
        res = json.loads(out.read_text())["utility"]
        self.assertIn("ghost", res["failed"])
        self.assertIn("nope.jsonl", res["failed"]["ghost"])
        self.assertEqual(res["tasks"]["copa"]["n"], 5)


if __name__ == "__main__":
    unittest.main()
