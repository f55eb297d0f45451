"""End-to-end tests of the `lethe` binary: exit codes (0 ok, 2 bad input), messages, --json output, and
agreement of `score` / `generate` with transformers on the tiny fixture models.

Run by CTest (tests/CMakeLists.txt), which sets LETHE_BIN, LETHE_FIXTURES, LETHE_SHARED_DATA.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import unittest

import torch
from safetensors.torch import load_file
from transformers import GPTNeoForCausalLM

BIN = os.environ.get("LETHE_BIN", "build/lethe")
FIXTURES = pathlib.Path(os.environ.get("LETHE_FIXTURES", "build/test-fixtures")) / "gpt_neo"
SHARED = pathlib.Path(os.environ.get("LETHE_SHARED_DATA", "../shared/data"))
TOKENIZER = SHARED / "gpt2_tokenizer"


def lethe(*args, stdin=None):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, input=stdin, timeout=300)


class Basics(unittest.TestCase):
    def test_version_and_help(self):
        r = lethe("--version")
        self.assertEqual(r.returncode, 0)
        self.assertIn("lethe", r.stdout)
        for cmd in ["info", "config", "tokenize", "score", "generate", "init-model", "train", "plan"]:
            r = lethe(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: lethe " + cmd, r.stdout)

    def test_unknown_command_and_option(self):
        self.assertEqual(lethe("frobnicate").returncode, 2)
        r = lethe("info", "--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)

    def test_cuda_without_a_gpu_is_refused_with_the_fix(self):
        # runtime.device=cuda where no GPU is visible (CI) or the build has no CUDA: exit 2 before any work,
        # naming the key and the way out.
        with tempfile.TemporaryDirectory() as d:
            r = lethe("train", "--set", "model.preset=tiny", "--set", "runtime.device=cuda", "--set",
                      f"run.output_dir={d}", "--set", "data.train_path=/nonexistent.npy")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("runtime.device=cuda", r.stderr)
            self.assertIn("runtime.device=cpu", r.stderr)
            self.assertEqual(os.listdir(d), [])

    def test_info_json(self):
        r = lethe("info", "--json")
        self.assertEqual(r.returncode, 0)
        info = json.loads(r.stdout)
        self.assertTrue(info["libtorch"].startswith("2."))
        self.assertTrue(info["mpi"])
        # No GPU on the CI machines: none listed, and runtime.device=auto resolves to the CPU.
        self.assertIsInstance(info["gpus"], list)
        self.assertEqual(info["device_auto"], "cuda" if info["gpus"] else "cpu")
        if info["cuda_build"]:  # the NCCL libtorch uses is linked and answers ncclGetVersion
            self.assertRegex(info["nccl_library"], r"^\d+\.\d+\.\d+$")


class Config(unittest.TestCase):
    def test_dump_resolves_preset_and_overrides(self):
        r = lethe("config", "--set", "model.preset=tiny", "--set", "generate.num_beams=3", "--dump")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("num_beams: 3", r.stdout)
        self.assertIn("hidden_size: 64", r.stdout)

    def test_unknown_key_suggests(self):
        r = lethe("config", "--set", "generate.num_beam=2", "--dump")
        self.assertEqual(r.returncode, 2)
        self.assertIn("generate.num_beams", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_bad_file(self):
        with tempfile.TemporaryDirectory() as d:
            f = pathlib.Path(d) / "x.yaml"
            f.write_text("generate:\n  max_new_tokens: lots\n")
            r = lethe("config", "--config", f, "--dump")
            self.assertEqual(r.returncode, 2)
            self.assertIn("x.yaml", r.stderr)
            self.assertIn("generate.max_new_tokens", r.stderr)


@unittest.skipUnless(TOKENIZER.is_dir(), f"{TOKENIZER} absent")
class Tokenize(unittest.TestCase):
    def test_encode_decode(self):
        r = lethe("tokenize", "--tokenizer", TOKENIZER, "--text", "Hello world", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["ids"], [15496, 995])
        r = lethe("tokenize", "--tokenizer", TOKENIZER, "--decode", "15496,995", "--json")
        self.assertEqual(json.loads(r.stdout)["text"], "Hello world")

    def test_bad_input(self):
        r = lethe("tokenize", "--tokenizer", TOKENIZER, "--decode", "99999999")
        self.assertEqual(r.returncode, 2)
        self.assertIn("99999999", r.stderr)
        r = lethe("tokenize", "--tokenizer", "/nonexistent", "--text", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent", r.stderr)
        with tempfile.TemporaryDirectory() as d:
            (pathlib.Path(d) / "vocab.json").write_text("[1, 2]")
            (pathlib.Path(d) / "merges.txt").write_text("#version: 0.2\n")
            r = lethe("tokenize", "--tokenizer", d, "--text", "x")
            self.assertEqual(r.returncode, 2)
            self.assertIn("vocab.json", r.stderr)


@unittest.skipUnless(FIXTURES.is_dir(), f"{FIXTURES} absent (built by the fixtures.causal_lm test)")
class ModelCommands(unittest.TestCase):
    case = FIXTURES / "window"

    @classmethod
    def setUpClass(cls):
        cls.exp = load_file(str(cls.case / "expected.safetensors"))
        cls.hf = GPTNeoForCausalLM.from_pretrained(cls.case / "model", attn_implementation="eager").eval()

    def test_score_matches_transformers(self):
        ids = self.exp["ids"][0].tolist()
        with tempfile.TemporaryDirectory() as d:
            f = pathlib.Path(d) / "in.jsonl"
            f.write_text(json.dumps({"ids": ids}) + "\n" + json.dumps({"ids": ids[:7]}) + "\n")
            r = lethe("score", "--model", self.case / "model", "--input", f, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(len(rows), 2)
        with torch.no_grad():
            lp = torch.log_softmax(self.hf(torch.tensor([ids])).logits[0, :-1], -1)
            want = lp.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
        self.assertEqual(rows[0]["tokens"], len(ids))
        self.assertLess(max(abs(a - b) for a, b in zip(rows[0]["logprobs"], want.tolist())), 1e-4)
        self.assertAlmostEqual(rows[0]["sum_logprob"], want.sum().item(), delta=1e-3)
        self.assertLess(max(abs(a - b) for a, b in zip(rows[1]["logprobs"], want[:6].tolist())), 1e-4)

    def test_generate_matches_transformers(self):
        prompt = self.exp["gen_ids"][0].tolist()  # row 0 is unpadded
        eos = int(self.exp["eos"][0])
        for beams, key in [(1, "greedy"), (2, "beam2")]:
            r = lethe("generate", "--model", self.case / "model", "--prompt-ids", ",".join(map(str, prompt)),
                      "-n", 12, "-k", beams, "--set", f"generate.eos_token_ids=[{eos}]", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)["ids"]
            with torch.no_grad():
                want = self.hf.generate(torch.tensor([prompt]), max_new_tokens=12, num_beams=beams, do_sample=False,
                                        eos_token_id=eos, pad_token_id=eos)[0, len(prompt):].tolist()
            self.assertEqual(out, want, key)

    def test_score_reports_file_line_numbers(self):
        with tempfile.TemporaryDirectory() as d:
            f = pathlib.Path(d) / "in.jsonl"
            f.write_text('\n{"ids": [1, 2, 3]}\n\n{"ids": [4, 5]}\n')
            r = lethe("score", "--model", self.case / "model", "--input", f, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([json.loads(x)["line"] for x in r.stdout.splitlines()], [2, 4])

    def test_generate_flags_are_validated_like_the_config(self):
        r = lethe("generate", "--model", self.case / "model", "--prompt-ids", "1,2", "-k", 0, "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("generate.num_beams", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_score_bad_input_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            f = pathlib.Path(d) / "in.jsonl"
            f.write_text('{"ids": [1, 2, 3]}\n{"ids": [1, 100000]}\n')
            r = lethe("score", "--model", self.case / "model", "--input", f, "--json")
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stdout, "")
            self.assertIn("in.jsonl:2", r.stderr)
            f.write_text('{"ids": [1, 2, 3]}\nnot json\n')
            r = lethe("score", "--model", self.case / "model", "--input", f)
            self.assertEqual(r.returncode, 2)
            self.assertIn("in.jsonl:2", r.stderr)

    def test_generate_bad_ids(self):
        r = lethe("generate", "--model", self.case / "model", "--prompt-ids", "1,x", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--prompt-ids", r.stderr)
        r = lethe("generate", "--model", self.case / "model", "--prompt-ids", "1,99999", "--json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("99999", r.stderr)

    def copy_model(self, d):
        m = pathlib.Path(d) / "m"
        shutil.copytree(self.case / "model", m)
        return m

    def test_corrupt_checkpoints(self):
        with tempfile.TemporaryDirectory() as d:
            m = self.copy_model(d)
            st = m / "model.safetensors"
            data = st.read_bytes()
            st.write_bytes(data[: len(data) // 2])  # truncated
            r = lethe("generate", "--model", m, "--prompt-ids", "1,2", "--json")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("model.safetensors", r.stderr)
            st.write_bytes(b"\xff" * 16)  # absurd header length
            r = lethe("generate", "--model", m, "--prompt-ids", "1,2", "--json")
            self.assertEqual(r.returncode, 2)
            self.assertIn("model.safetensors", r.stderr)
            st.unlink()
            (m / "pytorch_model.bin").write_bytes(b"not a pickle, never read")
            r = lethe("generate", "--model", m, "--prompt-ids", "1,2", "--json")
            self.assertEqual(r.returncode, 2)
            self.assertIn("save_pretrained", r.stderr)

    def test_missing_tensor(self):
        from safetensors.torch import save_file
        with tempfile.TemporaryDirectory() as d:
            m = self.copy_model(d)
            tensors = load_file(str(m / "model.safetensors"))
            del tensors["transformer.h.1.mlp.c_fc.weight"]
            save_file(tensors, str(m / "model.safetensors"), metadata={"format": "pt"})
            r = lethe("generate", "--model", m, "--prompt-ids", "1,2", "--json")
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stdout, "")
            self.assertIn("transformer.h.1.mlp.c_fc.weight", r.stderr)

    def test_wrong_config_json(self):
        with tempfile.TemporaryDirectory() as d:
            m = self.copy_model(d)
            cfg = json.loads((m / "config.json").read_text())
            cfg["model_type"] = "gpt2"
            (m / "config.json").write_text(json.dumps(cfg))
            r = lethe("score", "--model", m, "--input", "/dev/null")
            self.assertEqual(r.returncode, 2)
            self.assertIn("gpt_neo", r.stderr)
            cfg["model_type"], cfg["hidden_size"] = "gpt_neo", 64  # weights no longer fit the config
            (m / "config.json").write_text(json.dumps(cfg))
            r = lethe("score", "--model", m, "--input", "/dev/null")
            self.assertEqual(r.returncode, 2)
            self.assertIn("shape", r.stderr)


class InitModel(unittest.TestCase):
    def test_init_model_loads_in_transformers(self):
        with tempfile.TemporaryDirectory() as d:
            out = pathlib.Path(d) / "tiny"
            r = lethe("init-model", "--set", "model.preset=tiny", "--set", "model.gpt_neo.num_layers=2", "--out", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            m = GPTNeoForCausalLM.from_pretrained(out)
            self.assertEqual(m.config.num_layers, 2)
            self.assertEqual(m.config.hidden_size, 64)
            r = lethe("init-model", "--set", "model.preset=tiny", "--out", out)
            self.assertEqual(r.returncode, 2)
            self.assertIn("--force", r.stderr)
            # A bad --tokenizer is caught before anything is written.
            fresh = pathlib.Path(d) / "fresh"
            r = lethe("init-model", "--set", "model.preset=tiny", "--out", fresh, "--tokenizer", d)
            self.assertEqual(r.returncode, 2)
            self.assertFalse(fresh.exists())


if __name__ == "__main__":
    unittest.main()
