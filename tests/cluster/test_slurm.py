"""lethe on a real Slurm (slurm-wlm + munge from Debian, a single-node cluster started by this test):

- a 2-task ICU job submitted with `sbatch cluster/unlearn.sbatch` is interrupted twice, once by
  `scontrol requeue` and once by its own time limit (`--signal=B:USR1@…`), resumes from its newest checkpoint
  each time, and ends with weights, flags and metrics identical to an uninterrupted job; the launches
  (SLURM_JOB_ID, SLURM_RESTART_COUNT) and stops are in metrics.h5 and `lethe status` reports them;
- a job that fails for a real reason (bad config) fails, with lethe's message in its log, and is not requeued;
- the five-experiment job array plus its afterok aggregation job produce the report table, checked against
  numpy on the runs' metrics.h5;
- `launch/lethe-run` builds and runs the mpirun command; it and the batch scripts pass shellcheck.

Run by CTest (tests/CMakeLists.txt). Needs the daemons launch/setup.sh installs and ../shared/data.
"""
import csv
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "unlearn"))
from test_unlearn import BIN, MPI_ENV, ROOT, SHARED, SOURCE, TOKENIZER, tiny_gpt_neo  # noqa: E402
from slurm_cluster import SlurmCluster, missing_daemons  # noqa: E402

BIN = str(pathlib.Path(BIN).resolve())
SCRIPTS = ["launch/lethe-run", "launch/lethe-rank", "cluster/lib/job.sh", "cluster/unlearn.sbatch", "cluster/neo125m.sbatch",
           "cluster/neo1.3b.sbatch", "cluster/neo2.7b.sbatch", "cluster/icu-experiments.sbatch",
           "cluster/icu-report.sbatch", "cluster/submit-icu-experiments.sh", "bench/device_check.sh"]


def subset_csv(src, dst, n):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def latest_step(run):
    try:
        return int((run / "checkpoints" / "latest").read_text().strip().split("-")[1])
    except (OSError, IndexError, ValueError):
        return 0


def wait_for(cond, what, timeout=300):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise TimeoutError(f"waited {timeout} s for {what() if callable(what) else what}")
        time.sleep(0.2)


def series(path, group, skip=()):
    with h5py.File(path, "r") as f:
        return {k: f[group][k][()] for k in f[group] if k not in skip}


class Scripts(unittest.TestCase):
    def test_shellcheck_passes(self):
        r = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_lethe_run_binds_one_gpu_per_rank(self):
        # A node with 8 GPUs, told by --gpus-per-node (this machine has none): one GPU and a core range per rank,
        # and the rank -> host:GPU map printed.
        env = dict(MPI_ENV, LETHE_BIN=BIN)
        r = subprocess.run([ROOT / "launch/lethe-run", "-n", "8", "--gpus-per-node", "8", "--dry-run", "info"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("-x LETHE_BIND_GPU=1 -x LETHE_GPUS_PER_NODE=8", r.stderr)
        self.assertIn("--map-by ppr:8:node:PE=", r.stderr)
        self.assertIn("launch/lethe-rank", r.stderr)
        self.assertRegex(r.stderr, r"0->[^ ]+:0 .*7->[^ ]+:7")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        hostfile = pathlib.Path(tmp.name) / "hosts"
        hostfile.write_text("nodeA slots=4\nnodeB slots=4\n")
        r = subprocess.run([ROOT / "launch/lethe-run", "--hostfile", str(hostfile), "--gpus-per-node", "4",
                            "--dry-run", "info"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mpirun -np 8 ", r.stderr)
        self.assertRegex(r.stderr, r"4->nodeB:0")

    def test_lethe_run_prints_and_runs_the_mpirun_command(self):
        env = dict(MPI_ENV, LETHE_BIN=BIN)
        r = subprocess.run([ROOT / "launch/lethe-run", "-n", "2", "--gpus-per-node", "0", "--dry-run", "info"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"lethe-run: mpirun -np 2 --bind-to none", r.stderr)
        self.assertIn(f"{BIN} info", r.stderr)
        self.assertEqual(r.stdout, "")
        r = subprocess.run([ROOT / "launch/lethe-run", "-n", "2", "info", "--json"], capture_output=True,
                           text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(len(lines), 2)
        self.assertTrue(all(x["launched_by_mpi"] for x in lines))
        r = subprocess.run([ROOT / "launch/lethe-run", "-n", "0", "info"], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-n expects a positive integer", r.stderr)

    def test_status_and_report_reject_folders_that_are_not_runs(self):
        tmp = tempfile.mkdtemp(prefix="lethe-notrun-")
        try:
            for cmd in (["status", tmp], ["report", tmp], ["status", f"{tmp}/missing"]):
                r = subprocess.run([BIN, *cmd], capture_output=True, text=True)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(tmp, r.stderr)
            self.assertEqual(os.listdir(tmp), [])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@unittest.skipUnless(SOURCE.exists(), f"shared data not found at {SHARED} (set LETHE_SHARED_DATA)")
class RealSlurm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = missing_daemons()
        if missing:  # launch/setup.sh installs them; a test that cannot run must say so, not pass
            raise RuntimeError(f"{', '.join(missing)} not installed: run bash launch/setup.sh (apt slurm-wlm munge)")
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="lethe-slurm-"))
        if not os.environ.get("LETHE_KEEP_TMP"):  # set it to look at the jobs' logs and runs afterwards
            cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.cluster = SlurmCluster(cls.tmp / "slurm")
        cls.addClassCleanup(cls.cluster.stop)  # by PID, also when set-up or a test fails
        cls.cluster.start()
        tiny_gpt_neo(cls.tmp / "model", seed=1, hidden=64, layers=2)
        subset_csv(SHARED / "icu/exp/exp0/lm_extraction_128_0.csv", cls.tmp / "t16.csv", 16)
        cls.base = {"model": {"path": str(cls.tmp / "model")}, "tokenizer": {"path": str(TOKENIZER)},
                    "prep": {"source": str(SOURCE), "embedder": "tfidf", "output_dir": str(cls.tmp / "datasets")},
                    "zero": {"stage": 2}, "checkpoint": {"every": 1},
                    "runtime": {"seed": 7, "threads": 1}, "run": {"output_dir": str(cls.tmp / "results")}}
        # Thresholds no random model meets (BLEU >= 0 always): every pair trains every epoch, and the job
        # runs max_epochs — long enough to interrupt twice, identical however often it is.
        cfg = {**cls.base, "prep": {**cls.base["prep"], "forget_csv": str(cls.tmp / "t16.csv"), "name": "t16"},
               "unlearn": {"dataset": str(cls.tmp / "datasets/t16"), "batch_size": 4, "bleu": 0.0,
                           "acc": 0.0, "el": 0.0, "max_epochs": 14, "empty_batch": "step"},
               "optimizer": {"lr": 1e-3}}
        cls.config = cls.tmp / "icu.yaml"
        cls.config.write_text(json.dumps(cfg))  # JSON is YAML
        r = subprocess.run([BIN, "prep", "--config", cls.config], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.env = {"LETHE_ROOT": str(ROOT), "LETHE_BIN": BIN, "OMP_NUM_THREADS": "1",
                   **{k: v for k, v in MPI_ENV.items() if k.startswith("OMPI_")}}

    def submit(self, name, *args, sbatch=(), script="cluster/unlearn.sbatch", env=None):
        log = self.tmp / f"{name}.out"
        job = self.cluster.sbatch([f"--job-name={name}", f"--output={log}", *sbatch, script, *args],
                                  env={**self.env, **(env or {})}, cwd=ROOT)
        return job, log

    def test_requeue_and_time_limit_resume_to_the_uninterrupted_result(self):
        c, results = self.cluster, self.tmp / "results"
        straight, log0 = self.submit("straight", self.config, "--set", "run.name=straight", sbatch=["--ntasks=2"])
        c.wait(straight, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})
        self.assertEqual(c.job(straight)["JobState"], "COMPLETED", log0.read_text())

        job, log = self.submit("requeued", self.config, "--set", "run.name=requeued",
                               sbatch=["--ntasks=2", "--time=10", "--signal=B:USR1@50"])
        run = results / "requeued"
        # 1. Pre-empted from outside: scontrol requeue once the first epoch's checkpoint exists.
        wait_for(lambda: latest_step(run) >= 4, "the first checkpoint")
        c.run(["scontrol", "requeue", str(job)])
        c.wait(job, {"PENDING"}, until=lambda j: j.get("Restarts") == "1")
        first = latest_step(run)
        # A requeued job waits out the credential lifetime (cred_expire=10 in the test's slurm.conf) and
        # starts again by itself.
        # 2. Its own time limit: once the second start has saved a new checkpoint, shorten the limit to one
        #    minute; Slurm sends B:USR1 (50 s before it), the script forwards it, lethe saves and exits 143,
        #    the script requeues the job.
        c.wait(job, {"RUNNING"})
        wait_for(lambda: latest_step(run) > first, "a checkpoint of the second start")
        # Slurm checks limits about every 30 s: the start must be young enough that the warning (due 10 s
        # in) arrives before the one-minute limit itself.
        run_time = c.job(job)["RunTime"]
        self.assertLess(run_time, "00:00:25", "the second start took too long to checkpoint for this test")
        c.run(["scontrol", "update", f"JobId={job}", "TimeLimit=1"])
        c.wait(job, {"PENDING"}, until=lambda j: j.get("Restarts") == "2", timeout=120)
        c.run(["scontrol", "update", f"JobId={job}", "TimeLimit=10"])  # the third start runs to the end
        final = c.wait(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})
        text = log.read_text()
        self.assertEqual(final["JobState"], "COMPLETED", text)
        self.assertEqual(final["Restarts"], "2")
        self.assertIn("DUE TO JOB REQUEUE", text)
        self.assertIn("got SIGUSR1", text)
        self.assertIn(f"requeueing job {job}", text)
        self.assertEqual(text.count("resumed from"), 2, text)

        a, b = (load_file(results / k / "final/model.safetensors") for k in ["straight", "requeued"])
        self.assertEqual(set(a), set(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        sa, sb = (json.loads((results / k / "unlearn.json").read_text()) for k in ["straight", "requeued"])
        self.assertEqual(sa, sb)
        self.assertEqual(sa["epochs"], 14)
        ma, mb = results / "straight/metrics.h5", results / "requeued/metrics.h5"
        for group, timing in [("epoch", {"seconds"}), ("train", {"step_seconds"})]:
            ea, eb = series(ma, group, timing), series(mb, group, timing)
            self.assertEqual(set(ea), set(eb))
            for k in ea:
                np.testing.assert_array_equal(ea[k], eb[k], f"{group}/{k}")
        with h5py.File(ma, "r") as fa, h5py.File(mb, "r") as fb:
            for e in fa["samples"]:
                for k in fa["samples"][e]:
                    np.testing.assert_array_equal(fa["samples"][e][k][()], fb["samples"][e][k][()], f"{e}/{k}")
        # The history: three starts of one Slurm job, two stops (SIGTERM from the requeue, SIGUSR1).
        launches, stops = series(mb, "launches"), series(mb, "stops")
        np.testing.assert_array_equal(launches["step"], [0, 1, 2])
        np.testing.assert_array_equal(launches["slurm_job_id"], [job] * 3)
        np.testing.assert_array_equal(launches["slurm_restart_count"][1:], [1, 2])
        self.assertIn(launches["slurm_restart_count"][0], (-1, 0))
        np.testing.assert_array_equal(launches["world_size"], [2, 2, 2])
        self.assertEqual(launches["resumed_from_step"][0], -1)
        np.testing.assert_array_equal(launches["resumed_from_step"][1:], stops["step"])
        # The requeue's SIGTERM reaches the ranks from slurmstepd and, as USR1, from the batch script: either
        # may be first. The time limit's warning is USR1 only.
        self.assertIn(stops["signal"][0], (10, 15))
        self.assertEqual(stops["signal"][1], 10)
        self.assertEqual(len(series(ma, "launches")["step"]), 1)
        r = subprocess.run([BIN, "status", run, "--json"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual((s["state"], s["launches"], s["requeues"], s["slurm_job_id"]), ("finished", 3, 2, job), s)
        self.assertEqual((s["epoch"], s["step"], s["active_pairs"]), (14, 56, 16), s)
        self.assertEqual(s["last_checkpoint"]["step"], 56)
        self.assertEqual([x["signal"] for x in s["stops"]], list(stops["signal"]))

    def test_a_bad_config_fails_once_with_its_error_in_the_log(self):
        job, log = self.submit("bad", self.config, "--set", f"unlearn.dataset={self.tmp}/no-such-dataset",
                               sbatch=["--ntasks=2"], env={"LETHE_LAUNCHER": "mpirun"})
        j = self.cluster.wait(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
        text = log.read_text()
        self.assertEqual(j["JobState"], "FAILED", text)
        self.assertEqual(j["ExitCode"], "2:0", text)
        self.assertEqual(j["Restarts"], "0", text)
        self.assertIn("no-such-dataset", text)
        self.assertIn("error", text)
        self.assertIn("not requeued", text)
        self.assertNotIn("requeueing", text)

    def test_experiment_array_and_afterok_report(self):
        c = self.cluster
        for i in range(5):
            subset_csv(SHARED / f"icu/exp/exp{i}/lm_extraction_128_{i}.csv", self.tmp / f"exp{i}/targets.csv", 8)
        out = self.tmp / "exps"
        cfg = {**self.base, "run": {"output_dir": str(out)},
               "unlearn": {"batch_size": 4, "bleu": 0.0, "acc": 0.0, "el": 0.0, "max_epochs": 2},
               "optimizer": {"lr": 1e-3},
               "utility": {"suite": str(ROOT / "configs/utility/demo.yaml"), "tasks": ["copa", "wikitext"],
                           "limit": 6, "at_start": True, "at_end": True}}
        config = self.tmp / "exps.yaml"
        config.write_text(json.dumps(cfg))
        env = {**c.env, **self.env, "LETHE_EXP_CSV": f"{self.tmp}/exp{{i}}/targets.csv",
               "LETHE_DATASETS": str(self.tmp / "exp-datasets"), "LETHE_GPUS_PER_NODE": "0",
               "LETHE_SBATCH": f"--ntasks-per-node=1 --cpus-per-task=1 --time=10 --output={self.tmp}/%x-%j.out"}
        r = subprocess.run([ROOT / "cluster/submit-icu-experiments.sh", config], capture_output=True, text=True,
                           env=env, cwd=ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"job array (\d+) .* report: job (\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        array, report = int(m[1]), int(m[2])
        done = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}
        wait_for(lambda: all(t["JobState"] in done for t in c.jobs(array)), lambda: f"the array's tasks: {c.jobs(array)}", 600)
        j = c.wait(report, done, timeout=120)
        logs = "".join(p.read_text() for p in sorted(self.tmp.glob("lethe-icu-*.out")))
        self.assertEqual(j["JobState"], "COMPLETED", logs)
        tasks = c.jobs(array)
        self.assertEqual(sorted(t["ArrayTaskId"] for t in tasks), [str(i) for i in range(5)])
        self.assertTrue(all(t["JobState"] == "COMPLETED" for t in tasks), tasks)
        self.assertGreaterEqual(j["StartTime"], max(t["EndTime"] for t in tasks))  # afterok: after all five

        runs = [out / f"run-exp{i}" for i in range(5)]
        rows = {}
        with open(out / "report/summary.csv", newline="") as f:
            for row in csv.DictReader(f):
                rows[(row["metric"], row["stage"])] = row
        for key, label in [("el", "EL10"), ("ma", "MA"), ("bleu", "BLEU"), ("entropy", "Entropy")]:
            for stage, pick in [("before", 0), ("after", -1)]:
                v = np.array([series(r / "metrics.h5", "epoch")[key][pick] for r in runs])
                row = rows[(label, stage)]
                self.assertEqual(int(row["n"]), 5)
                np.testing.assert_allclose(float(row["mean"]), v.mean(), rtol=1e-5, atol=1e-12, err_msg=label)
                np.testing.assert_allclose(float(row["std"]), v.std(ddof=1), rtol=1e-4, atol=1e-12, err_msg=label)
        for label in ["Cls Avg", "Wikitext"]:
            v = [json.loads((r / "unlearn.json").read_text())["utility"]["2"][label] for r in runs]
            np.testing.assert_allclose(float(rows[(label, "after")]["mean"]), np.mean(v), rtol=1e-5)
        self.assertEqual(float(rows[("Epochs", "after")]["mean"]), 2.0)
        self.assertEqual(rows[("BERT F1", "after")]["n"], "0")  # no BERT configured: not measured
        md = (out / "report/report.md").read_text()
        self.assertIn("5 run(s)", md)
        for i in range(5):
            self.assertIn(f"| run-exp{i} | max_epochs |", md)
        with open(out / "report/runs.csv", newline="") as f:
            self.assertEqual([r["run"] for r in csv.DictReader(f)], [f"run-exp{i}" for i in range(5)])
        for name in ["el10", "ma", "bleu", "entropy", "active-pairs"]:
            svg = ET.parse(out / f"report/curves-{name}.svg").getroot()
            self.assertTrue(svg.tag.endswith("svg"))
            self.assertIn(f"curves-{name}.svg", md)
        for i, r in enumerate(runs):
            self.assertEqual(series(r / "metrics.h5", "launches")["slurm_array_task_id"][0], i)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a TERM still runs the cleanups (daemons, files)
    unittest.main()
