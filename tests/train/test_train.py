"""End-to-end tests of `lethe train` under real `mpirun` (2 and 3 ranks, as root): equivalence with a
single-process transformers + torch.optim.AdamW reference, memory and communication accounting, bit-exact
resume after kill -9, resharding resume, faults (kill during a checkpoint write, corrupt and truncated
checkpoints, a different model), SIGTERM, metrics readable while running, and `lethe plan` against measured
peak RSS.

Run by CTest (tests/CMakeLists.txt), which sets LETHE_BIN and LETHE_PYTHON.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np
import torch
from safetensors.torch import load_file

BIN = os.environ.get("LETHE_BIN", "build/lethe")
HERE = pathlib.Path(__file__).resolve().parent
REFERENCE = HERE.parent / "reference" / "zero_reference.py"
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_oob_tcp_if_include="lo", OMPI_MCA_rmaps_base_oversubscribe="1")
VOCAB, ROWS, COLS = 256, 48, 33


def command(n, args):
    base = [BIN, *map(str, args)]
    if n == 0:  # no launcher at all
        return base
    return ["mpirun", "-np", str(n), "--bind-to", "none", *base]


def run(n, args, timeout=600):
    return subprocess.run(command(n, args), capture_output=True, text=True, env=MPI_ENV, timeout=timeout)


def start(n, args):
    """A job in its own process group, so kill -9 of the job reaches every rank."""
    return subprocess.Popen(command(n, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=MPI_ENV, start_new_session=True)


def kill_job(p):
    """kill -9 of the whole job: mpirun and every rank. Open MPI gives each rank its own process group, so
    match the session the job was started in."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == p.pid:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    p.communicate()


def wait_for(predicate, timeout=120, poll=0.005):
    t = time.time()
    while time.time() - t < timeout:
        if predicate():
            return True
        time.sleep(poll)
    return False


def series(run_dir, name):
    with h5py.File(run_dir / "metrics.h5", "r") as f:
        return f["train/" + name][:]


def steps_logged(run_dir):
    """Rows in metrics.h5 so far; 0 while the file is missing or being flushed (the writer holds the lock)."""
    try:
        return len(series(run_dir, "step"))
    except (OSError, KeyError):
        return 0


def shard_state(ckpt):
    """The global optimizer state (master, exp_avg, exp_avg_sq) concatenated from every rank's shard."""
    files = sorted(ckpt.glob("optim-*.h5"))
    out = {}
    for name in ["master", "exp_avg", "exp_avg_sq"]:
        parts = []
        for f in files:
            with h5py.File(f, "r") as h:
                parts.append(h[name][:])
        out[name] = np.concatenate(parts)
    return out


def model_weights(ckpt):
    with h5py.File(ckpt / "meta.h5", "r") as f:
        return {k: f["model"][k][:] for k in f["model"]}


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="lethe-train-"))
        rng = np.random.default_rng(7)
        # Token rows with structure (a repeated motif per row plus noise) so the loss actually falls.
        base = rng.integers(0, VOCAB, size=(ROWS, 8))
        rows = np.tile(base, (1, COLS // 8 + 1))[:, :COLS]
        noise = rng.random(rows.shape) < 0.2
        rows[noise] = rng.integers(0, VOCAB, size=noise.sum())
        cls.data = cls.tmp / "rows.npy"
        np.save(cls.data, rows.astype(np.uint16))
        cls.model = cls.tmp / "init"
        r = run(0, ["init-model", "--out", cls.model, "--set", "model.preset=tiny", "--set", f"model.gpt_neo.vocab_size={VOCAB}",
                    "--set", "model.gpt_neo.bos_token_id=0", "--set", "model.gpt_neo.eos_token_id=0",
                    "--set", "runtime.seed=11"])
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train_args(self, name, steps=20, stage=1, extra=()):
        return ["train", "--set", f"data.train_path={self.data}", "--set", f"model.path={self.model}",
                "--set", f"train.steps={steps}", "--set", "train.global_batch_size=12", "--set",
                "train.micro_batch_size=2", "--set", "optimizer.lr=1e-3", "--set", "optimizer.schedule=cosine",
                "--set", "optimizer.warmup_steps=3", "--set", "optimizer.min_lr_ratio=0.1", "--set", "optimizer.weight_decay=0.01",
                "--set", "optimizer.max_grad_norm=0.5", "--set", f"zero.stage={stage}", "--set", "zero.bucket_numel=20000",
                "--set", "runtime.threads=1", "--set", f"run.output_dir={self.tmp}", "--set", f"run.name={name}",
                "--set", "metrics.flush_seconds=0", *extra]

    def test_equivalence_with_single_process_adamw(self):
        ref = self.tmp / "reference.safetensors"
        r = subprocess.run([sys.executable, str(REFERENCE), "--model", str(self.model), "--data", str(self.data),
                            "--out", str(ref), "--steps", "20", "--global-batch", "12", "--seed", "1234", "--lr", "1e-3",
                            "--schedule", "cosine", "--warmup", "3", "--min-lr-ratio", "0.1", "--weight-decay", "0.01",
                            "--clip", "0.5"], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = load_file(ref)
        ref_losses = want.pop("losses").numpy()
        psi = sum(v.numel() for v in want.values() if v.is_floating_point())
        seen_grad_peaks = {}
        for n, stage in [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (2, 0)]:
            with self.subTest(ranks=n, stage=stage):
                name = f"eq-{n}-{stage}"
                r = run(n, self.train_args(name, stage=stage))
                self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
                got = load_file(self.tmp / name / "final" / "model.safetensors")
                worst = max((got[k] - want[k]).abs().max().item() for k in got)
                self.assertLessEqual(worst, 1e-5, f"max |Δparam| {worst}")
                run_dir = self.tmp / name
                np.testing.assert_allclose(series(run_dir, "loss"), ref_losses, rtol=0, atol=1e-5)
                self.assertTrue((series(run_dir, "grad_norm") > 0.5).any(), "clipping never engaged")
                # Optimizer state: exactly 12 bytes (fp32 master, m, v) per owned element; the slice is Ψ/N
                # rounded up to the layout's 16-element alignment (stage 0 owns everything).
                unit = 16 * n
                padded = (psi + unit - 1) // unit * unit
                owned = padded if stage == 0 else padded // n
                self.assertEqual(series(run_dir, "optimizer_bytes")[-1], 12 * owned)
                self.assertLess(owned - (psi + n - 1) // n, 16 if stage else padded)
                # Communication: message bytes per step as the layout predicts (accumulation 6/N micro-steps).
                accum = 12 // (2 * n)
                rs, ag, ar = (series(run_dir, k) for k in ["reduce_scatter_bytes", "all_gather_bytes", "all_reduce_bytes"])
                if n > 1 and stage > 0:
                    self.assertTrue((rs == (accum if stage == 2 else 1) * padded * 4).all(), rs)
                    self.assertTrue((ag == padded * 4).all(), ag)
                if stage == 2:
                    seen_grad_peaks[n] = series(run_dir, "grad_bytes_peak")[-1]
        # ZeRO-2 keeps only the owned gradient slice (plus buckets in flight): it shrinks with N.
        self.assertLess(seen_grad_peaks[3], seen_grad_peaks[2])

    def test_resume_after_kill_is_bit_exact(self):
        extra = ("--set", "checkpoint.every=6", "--set", "checkpoint.keep_last=10", "--set", "train.micro_batch_size=1")
        r = run(2, self.train_args("straight", steps=30, extra=extra))
        self.assertEqual(r.returncode, 0, r.stderr)
        p = start(2, self.train_args("killed", steps=30, extra=extra))
        self.assertTrue(wait_for(lambda: (self.tmp / "killed/checkpoints/step-00000012/COMPLETE").exists()))
        kill_job(p)
        self.assertFalse((self.tmp / "killed/checkpoints/step-00000030").exists(), "the job finished before the kill")
        r = run(2, self.train_args("killed", steps=30, extra=extra) + ["--resume", "auto"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed from", r.stderr)
        a, b = (self.tmp / k / "checkpoints/step-00000030" for k in ["straight", "killed"])
        for k, v in model_weights(a).items():
            self.assertTrue(np.array_equal(v, model_weights(b)[k]), k)
        sa, sb = shard_state(a), shard_state(b)
        for k in sa:
            self.assertTrue(np.array_equal(sa[k], sb[k]), k)
        # The metrics history is one consistent run: steps 1..30 once each.
        self.assertEqual(list(series(self.tmp / "killed", "step")), list(range(1, 31)))

        # Resharding: the N=2 checkpoint of step 12 resumed at N=1 and N=3 takes the same 13th step.
        want = series(self.tmp / "straight", "loss")[12]
        for n in [1, 3]:
            with self.subTest(resume_ranks=n):
                name = f"reshard-{n}"
                r = run(n, self.train_args(name, steps=13, extra=extra) +
                        ["--resume", str(self.tmp / "straight/checkpoints/step-00000012")])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("saved by 2 rank(s)", r.stderr)
                self.assertAlmostEqual(series(self.tmp / name, "loss")[-1], want, delta=1e-6)

    def test_sigterm_saves_and_resume_continues_exactly(self):
        extra = ("--set", "checkpoint.every=0", "--set", "train.micro_batch_size=1")
        r = run(2, self.train_args("term-straight", steps=24, extra=extra))
        self.assertEqual(r.returncode, 0, r.stderr)
        p = start(2, self.train_args("term", steps=24, extra=extra))
        self.assertTrue(wait_for(lambda: steps_logged(self.tmp / "term") >= 3, poll=0.05))
        # What Slurm does: SIGTERM to the ranks themselves (mpirun forwards SIGUSR1 the same way).
        subprocess.run(["pkill", "-TERM", "-f", f"^{BIN} train.*run.name=term "], check=False)
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 143, out)
        self.assertIn("stop signal 15", out)
        stopped = sorted((self.tmp / "term/checkpoints").glob("step-*"))
        self.assertEqual(len(stopped), 1)
        self.assertLess(int(stopped[0].name[5:]), 24)
        r = run(2, self.train_args("term", steps=24, extra=extra) + ["--resume", "auto"])
        self.assertEqual(r.returncode, 0, r.stderr)
        a, b = (self.tmp / k / "checkpoints/step-00000024" for k in ["term-straight", "term"])
        sa, sb = shard_state(a), shard_state(b)
        for k in sa:
            self.assertTrue(np.array_equal(sa[k], sb[k]), k)

    def test_kill_during_checkpoint_write_keeps_the_previous_one(self):
        # The tiny preset's 50k vocabulary makes each checkpoint ~40 MB: long enough to be caught mid-write.
        args = ["train", "--config", "configs/train/tiny.yaml", "--set", f"data.train_path={self.data}", "--set",
                f"run.output_dir={self.tmp}", "--set", "run.name=midwrite", "--set", "checkpoint.every=2", "--set",
                "runtime.threads=1", "--set", "train.steps=40", "--set", "data.max_rows=48", "--set", "data.seq_len=33"]
        root = self.tmp / "midwrite/checkpoints"
        caught = None
        for _ in range(3):
            shutil.rmtree(self.tmp / "midwrite", ignore_errors=True)
            p = start(2, args)
            def writing():
                # The folders move under our feet (rename, prune): a vanished one just means "not now".
                try:
                    return root.exists() and bool(list(root.glob("step-*/COMPLETE"))) and any(
                        x.name.startswith(".tmp-") and any(x.iterdir()) for x in root.iterdir())
                except OSError:
                    return False

            if wait_for(writing, timeout=120, poll=0.001):
                kill_job(p)
                tmp = [x for x in root.iterdir() if x.name.startswith(".tmp-")]
                if tmp:
                    caught = tmp[0].name[5:]
                    break
            else:
                kill_job(p)
        self.assertIsNotNone(caught, "never caught a checkpoint mid-write")
        self.assertFalse((root / caught).exists())
        complete = sorted(x.name for x in root.glob("step-*") if (x / "COMPLETE").exists())
        self.assertTrue(complete)
        r = run(2, args + ["--resume", "auto"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"resumed from {root / complete[-1]}", r.stderr)
        self.assertFalse([x for x in root.iterdir() if x.name.startswith(".tmp-")], "half-written folder left behind")

    def test_bad_checkpoints_are_rejected(self):
        r = run(2, self.train_args("faults", steps=4))
        self.assertEqual(r.returncode, 0, r.stderr)
        good = self.tmp / "faults/checkpoints/step-00000004"
        # A flipped bit inside a dataset's data.
        flipped = self.tmp / "flipped"
        shutil.copytree(good, flipped)
        with h5py.File(flipped / "optim-00001.h5", "r") as f:
            offset = f["exp_avg"].id.get_offset() + 40
        with open(flipped / "optim-00001.h5", "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x10]))
        r = run(2, self.train_args("faults", steps=6) + ["--resume", str(flipped)])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("exp_avg", r.stderr)
        self.assertIn("checksum", r.stderr)
        # A truncated shard.
        cut = self.tmp / "truncated"
        shutil.copytree(good, cut)
        with open(cut / "optim-00000.h5", "r+b") as f:
            f.truncate(1000)
        r = run(1, self.train_args("faults", steps=6) + ["--resume", str(cut)])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("optim-00000.h5", r.stderr)
        self.assertIn("truncated", r.stderr)
        # A different model.
        other = self.tmp / "other-model"
        subprocess.run([BIN, "init-model", "--out", str(other), "--set", "model.preset=tiny", "--set",
                        f"model.gpt_neo.vocab_size={VOCAB}", "--set", "model.gpt_neo.num_layers=2", "--set", "model.gpt_neo.bos_token_id=0",
                        "--set", "model.gpt_neo.eos_token_id=0"], check=True, capture_output=True)
        r = run(0, self.train_args("faults", steps=6) + ["--set", f"model.path={other}", "--resume", str(good)])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("different model", r.stderr)
        self.assertIn("num_layers", r.stderr)
        # Another dataset size: the stored data cursor would point elsewhere.
        r = run(0, self.train_args("faults", steps=6) + ["--set", "data.max_rows=36", "--resume", str(good)])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("data position", r.stderr)
        # No checkpoint folder at all.
        r = run(0, self.train_args("faults", steps=6) + ["--resume", str(self.tmp / "nope")])
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bad_input(self):
        r = run(3, self.train_args("geometry", extra=("--set", "train.global_batch_size=8")))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("multiple of train.micro_batch_size", r.stderr)
        r = run(0, self.train_args("nodata") + ["--set", f"data.train_path={self.tmp / 'missing.npy'}"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.npy", r.stderr)
        bad = self.tmp / "bad.npy"
        bad.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4',")
        r = run(0, self.train_args("nodata") + ["--set", f"data.train_path={bad}"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.npy", r.stderr)
        empty = self.tmp / "empty.npy"
        np.save(empty, np.zeros((0, 33), dtype=np.uint16))
        r = run(0, self.train_args("nodata") + ["--set", f"data.train_path={empty}"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("empty", r.stderr)
        r = run(0, self.train_args("vocab") + ["--set", "model.path=", "--set", "model.preset=tiny", "--set",
                                                "model.gpt_neo.bos_token_id=0", "--set", "model.gpt_neo.eos_token_id=0",
                                                "--set", "model.gpt_neo.vocab_size=100"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("vocabulary", r.stderr)

    def test_metrics_readable_while_running(self):
        p = start(1, self.train_args("live", steps=60, extra=("--set", "train.micro_batch_size=1")))
        lengths = []
        try:
            while p.poll() is None and len(lengths) < 5:
                try:
                    with h5py.File(self.tmp / "live/metrics.h5", "r") as f:
                        lengths.append(len(f["train/loss"]))
                except (OSError, KeyError):
                    pass  # not created yet, or caught mid-flush: retry
                time.sleep(0.2)
            self.assertIsNone(p.poll(), "the run ended before the reads")
        finally:
            out, _ = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, out)  # readers never break the run
        self.assertGreaterEqual(len(lengths), 2)
        self.assertGreater(lengths[-1], 0)

    def test_plan_matches_measured_peak_rss(self):
        long_rows = self.tmp / "long.npy"
        np.save(long_rows, np.random.default_rng(3).integers(0, 50257, size=(48, 129)).astype(np.int64))
        for i, (hidden, layers, batch, seq) in enumerate([(256, 4, 2, 64), (512, 6, 4, 128)]):
            with self.subTest(hidden=hidden):
                folder = self.tmp / f"plan-{i}"
                subprocess.run([BIN, "init-model", "--out", str(folder), "--set", "model.preset=tiny", "--set",
                                f"model.gpt_neo.hidden_size={hidden}", "--set", "model.gpt_neo.num_heads=8", "--set",
                                f"model.gpt_neo.num_layers={layers}"], check=True, capture_output=True)
                plan = json.loads(subprocess.run([BIN, "plan", "--model", str(folder), "--ranks", "1", "--zero", "1",
                                                  "--batch", str(batch), "--seq", str(seq), "--json"],
                                                 capture_output=True, text=True, check=True).stdout)
                r = run(0, ["train", "--config", "configs/train/tiny.yaml", "--set", f"model.path={folder}",
                            "--set", f"data.train_path={long_rows}", "--set",
                            f"run.output_dir={self.tmp}", "--set", f"run.name=plan-run-{i}", "--set", "train.steps=3",
                            "--set", "checkpoint.every=0", "--set", "train.save_final=false", "--set", "zero.stage=1",
                            "--set", f"data.seq_len={seq}", "--set", f"train.micro_batch_size={batch}",
                            "--set", "train.global_batch_size=12", "--set", "metrics.flush_seconds=0"])
                self.assertEqual(r.returncode, 0, r.stderr)
                peak = series(self.tmp / f"plan-run-{i}", "peak_rss_bytes").max()
                self.assertLess(abs(plan["total_bytes"] - peak) / peak, 0.15, f"plan {plan['total_bytes']} vs {peak}")

    def test_bf16_parameters_with_fp32_masters(self):
        r = run(0, self.train_args("fp32", steps=10))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(2, self.train_args("bf16", steps=10, stage=2, extra=("--set", "model.dtype=bfloat16")))
        self.assertEqual(r.returncode, 0, r.stderr)
        fp32, bf16 = series(self.tmp / "fp32", "loss"), series(self.tmp / "bf16", "loss")
        # bf16 keeps 8 mantissa bits: the curves agree to ~1e-2, and both fall.
        np.testing.assert_allclose(bf16, fp32, atol=3e-2)
        self.assertLess(bf16[-1], bf16[0])
        ckpt = self.tmp / "bf16/checkpoints/step-00000010"
        master = shard_state(ckpt)["master"]
        with h5py.File(ckpt / "meta.h5", "r") as f:
            names = bytes(f["layout/names"][:]).decode().split()
            weights = np.concatenate([f["model"][n][:].ravel() for n in names])  # flat-buffer order
        # The stored weights are the bf16 parameters: each is its fp32 master rounded to bf16.
        rounded = torch.from_numpy(master[:weights.size]).to(torch.bfloat16).float().numpy()
        self.assertTrue(np.array_equal(weights, rounded))

    def test_fp16_loss_scaling_resumes_exactly(self):
        """float16 parameters train with dynamic loss scaling: an overflowing step is skipped and halves the
        scale, two finite steps in a row double it; the scale is in the checkpoint, so a resumed run equals a
        straight one."""
        fp16 = ("--set", "model.dtype=float16", "--set", "zero.initial_loss_scale=1048576",
                "--set", "zero.loss_scale_window=2")
        r = run(0, self.train_args("fp16", steps=8, extra=fp16))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("overflowed at loss scale", r.stdout + r.stderr)
        loss, scale = series(self.tmp / "fp16", "loss"), series(self.tmp / "fp16", "loss_scale")
        self.assertTrue(np.all(np.isfinite(loss)))
        self.assertEqual(scale[0], 2.0 ** 20)
        self.assertEqual(scale[1], 2.0 ** 19)  # step 1 overflowed
        self.assertTrue((np.diff(scale) > 0).any(), scale)  # and the scale grew again later
        self.assertLess(loss[-1], loss[0])
        r = run(0, self.train_args("fp16-resumed", steps=4, extra=fp16 + ("--set", "checkpoint.every=4")))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(0, self.train_args("fp16-resumed", steps=8, extra=fp16 + ("--set", "checkpoint.resume=auto")))
        self.assertEqual(r.returncode, 0, r.stderr)
        np.testing.assert_array_equal(series(self.tmp / "fp16-resumed", "loss"), loss)
        np.testing.assert_array_equal(series(self.tmp / "fp16-resumed", "loss_scale"), scale)

    def test_activation_checkpointing_changes_nothing(self):
        for name, on in [("no-recompute", "false"), ("recompute", "true")]:
            r = run(0, self.train_args(name, steps=4, extra=("--set", f"train.activation_checkpointing={on}")))
            self.assertEqual(r.returncode, 0, r.stderr)
        np.testing.assert_allclose(series(self.tmp / "recompute", "loss"), series(self.tmp / "no-recompute", "loss"),
                                   rtol=1e-6)

    def llama_folder(self):
        """A tiny random Llama written by transformers itself (GQA 2:1, untied head) on the rows' vocabulary."""
        d = self.tmp / "llama-init"
        if not d.exists():
            from transformers import LlamaConfig, LlamaForCausalLM
            torch.manual_seed(5)
            cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                              rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0)
            LlamaForCausalLM(cfg).save_pretrained(d)
        return d

    def test_llama_zero2_resume_at_one_rank_is_bitwise(self):
        """A 2-rank ZeRO-2 Llama run, checkpointed at step 3 and resumed on 1 rank, ends bitwise where the
        uninterrupted 2-rank run ends: master weights, Adam moments, data cursor and RNG re-sliced exactly.
        The geometry makes that comparable bit for bit: two micro-batches per step (one per rank at N=2, both on
        the one rank at N=1), and a float sum of two terms does not depend on their order; no clipping (the
        norm's partial sums would)."""
        extra = ("--set", "checkpoint.every=3", "--set", "checkpoint.keep_last=10", "--set", "train.global_batch_size=4",
                 "--set", "optimizer.max_grad_norm=0", "--set", f"model.path={self.llama_folder()}")
        r = run(2, self.train_args("llama-straight", steps=6, stage=2, extra=extra))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(1, self.train_args("llama-resumed", steps=6, stage=2, extra=extra) +
                ["--resume", str(self.tmp / "llama-straight/checkpoints/step-00000003")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("saved by 2 rank(s)", r.stderr)
        a, b = (self.tmp / k / "checkpoints/step-00000006" for k in ["llama-straight", "llama-resumed"])
        wa, wb = model_weights(a), model_weights(b)
        self.assertEqual(sorted(wa), sorted(wb))
        for k in wa:
            self.assertTrue(np.array_equal(wa[k], wb[k]), k)
        sa, sb = shard_state(a), shard_state(b)
        for k in sa:  # the flat buffers are padded to 16·N elements: compare the common part
            n = min(len(sa[k]), len(sb[k]))
            self.assertTrue(np.array_equal(sa[k][:n], sb[k][:n]), k)
        np.testing.assert_array_equal(series(self.tmp / "llama-resumed", "loss")[-3:],
                                      series(self.tmp / "llama-straight", "loss")[3:])

    def test_llama_from_the_config_keys(self):
        """No model.path: the llama preset and model.llama.* keys build the model, and final/ says so."""
        base = self.train_args("llama-config", steps=3)
        drop = {i for i, a in enumerate(base) if str(a).startswith("model.path=")}
        args = [a for i, a in enumerate(base) if i not in drop and i + 1 not in drop]
        r = run(1, args + ["--set", "model.preset=llama-tiny", "--set", f"model.llama.vocab_size={VOCAB}",
                           "--set", "model.llama.num_layers=2", "--set", "model.llama.bos_token_id=0",
                           "--set", "model.llama.eos_token_ids=[0]", "--set", "model.llama.rope_theta=500000"])
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = json.loads((self.tmp / "llama-config/final/config.json").read_text())
        self.assertEqual((cfg["model_type"], cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["vocab_size"]),
                         ("llama", 2, 2, VOCAB))
        theta = cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta"))
        self.assertEqual(theta, 500000)

    def test_export_loads_in_transformers(self):
        from transformers import AutoModelForCausalLM

        def logits(folder, ids):
            m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            with torch.no_grad():
                return m(ids).logits

        ids = torch.from_numpy(np.load(self.data)[:3].astype(np.int64))
        for family, extra in [("gpt_neo", ()), ("llama", ("--set", f"model.path={self.llama_folder()}"))]:
            with self.subTest(family=family):
                name = f"export-{family}"
                r = run(2, self.train_args(name, steps=4, stage=2, extra=extra))
                self.assertEqual(r.returncode, 0, r.stderr)
                want = logits(self.tmp / name / "final", ids)
                # fp32 in shards: the same weights as final/, so the same logits.
                out = self.tmp / f"{name}-hf"
                r = run(0, ["export", "--checkpoint", self.tmp / name, "--out", out, "--max-shard-size", "100KB"])
                self.assertEqual(r.returncode, 0, r.stderr)
                index = json.loads((out / "model.safetensors.index.json").read_text())
                self.assertGreater(len(set(index["weight_map"].values())), 1)
                self.assertFalse((out / "model.safetensors").exists())
                self.assertTrue(torch.equal(logits(out, ids), want))
                # bf16: the file says so and the logits stay within bf16 rounding of the fp32 ones.
                out16 = self.tmp / f"{name}-bf16"
                r = run(0, ["export", "--checkpoint", self.tmp / name / "checkpoints", "--out", out16, "--dtype",
                            "bfloat16"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(json.loads((out16 / "config.json").read_text())["dtype"], "bfloat16")
                self.assertTrue(all(t.dtype == torch.bfloat16 for t in load_file(out16 / "model.safetensors").values()))
                self.assertLess((logits(out16, ids) - want).abs().max().item(), 0.1)
                # Replacing a folder that holds a model needs --force; a non-checkpoint is refused.
                r = run(0, ["export", "--checkpoint", self.tmp / name, "--out", out16])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--force", r.stderr)
        r = run(0, ["export", "--checkpoint", self.tmp / "llama-init", "--out", self.tmp / "x"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a lethe checkpoint", r.stderr)
        r = run(0, ["export", "--checkpoint", self.tmp / "export-llama", "--out", self.tmp / "x", "--max-shard-size",
                    "2 apples"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("2 apples", r.stderr)

    def test_info_reports_backends(self):
        info = json.loads(run(0, ["info", "--json"]).stdout)
        self.assertTrue(info["mpi"])
        self.assertRegex(info["hdf5"], r"^1\.\d+\.\d+$")
        if info["cuda_build"]:  # a CUDA libtorch with NCCL found: the NCCL communicator must be compiled in
            self.assertTrue(info["nccl"])
            self.assertRegex(info["nccl_library"], r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    unittest.main()
