"""A real single-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's slurm-wlm and munge,
started in the foreground under one scratch folder with a generated slurm.conf (free ports, 2 CPUs on
localhost), stopped by PID. The recipe is ../shared/spec/environment-notes.md's.

    with SlurmCluster(scratch) as c:
        job = c.sbatch(["--ntasks=2", "script.sbatch"])
        c.wait(job, {"COMPLETED"})
"""
import ctypes
import getpass
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

DAEMONS = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (a CTest timeout), so
    no daemon outlives it. The daemons run in the foreground (-F / -D), so the setting stays theirs."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def missing_daemons():
    return [d for d in DAEMONS if not os.access(d, os.X_OK)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, scratch, cpus=2):
        self.dir = pathlib.Path(scratch)
        self.cpus = cpus
        self.procs = []
        self.env = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        d = self.dir
        for sub in ["munge", "run", "state", "spool", "log"]:
            (d / sub).mkdir(parents=True, exist_ok=True)
        # munged wants every folder above its socket searchable by all (mkdtemp makes 0700 ones).
        for p in [d, *d.parents]:
            if p.stat().st_uid == os.getuid() and not p.stat().st_mode & 0o001:
                os.chmod(p, p.stat().st_mode | 0o755)
        os.chmod(d / "munge", 0o700)
        os.chmod(d / "run", 0o755)
        key = d / "munge" / "munge.key"
        if pathlib.Path("/etc/munge/munge.key").exists():
            shutil.copy("/etc/munge/munge.key", key)
        else:
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
        os.chmod(key, 0o600)
        sock = d / "run" / "munge.sock"
        self._spawn(["/usr/sbin/munged", "-F", f"--key-file={key}", f"--socket={sock}",
                     f"--pid-file={d}/run/munged.pid", f"--log-file={d}/munge/munged.log",
                     f"--seed-file={d}/munge/munged.seed"], "munged")
        self._wait_for(sock.exists, "munged's socket")
        conf = d / "slurm.conf"
        conf.write_text(self._conf(sock))
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        self._spawn(["/usr/sbin/slurmctld", "-D", "-f", str(conf)], "slurmctld")
        self._wait_for(lambda: self._ok(["scontrol", "ping"]), "slurmctld to answer")
        self._spawn(["/usr/sbin/slurmd", "-D", "-f", str(conf), "-N", "localhost"], "slurmd")
        self._wait_for(lambda: "idle" in self.run(["sinfo", "-h", "-o", "%T"]).stdout, "the node to be idle")

    def stop(self):
        """Cancels every job, then stops slurmd, slurmctld and munged by PID (TERM, then KILL)."""
        if self.env and self.procs:
            self.run(["scancel", "--full", "-u", getpass.getuser()], check=False)
            self._wait_for(lambda: not self.run(["squeue", "-h"], check=False).stdout.strip(), "jobs to end",
                           timeout=60, fail=False)
        for p, _ in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    # --- commands ------------------------------------------------------------------------------------------
    def run(self, cmd, check=True, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True, env={**self.env, **kw.pop("env", {})}, **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {r.returncode}: {r.stderr}")
        return r

    def sbatch(self, args, env=None, cwd=None):
        r = self.run(["sbatch", "--parsable", *map(str, args)], env=env or {}, cwd=cwd)
        return int(r.stdout.strip().split(";")[0])

    def job(self, job_id):
        """scontrol show job as a dict (JobState, Restarts, ExitCode, …)."""
        out = self.run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def jobs(self, job_id):
        """One record per line: the tasks of a job array, or the one job."""
        out = self.run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]

    def wait(self, job_id, states, timeout=600, until=None):
        """Waits until the job is in one of `states` (and until() holds); returns its record."""
        t = time.time()
        while True:
            j = self.job(job_id)
            if j.get("JobState") in states and (until is None or until(j)):
                return j
            if time.time() - t > timeout:
                raise TimeoutError(f"job {job_id} still {j.get('JobState')} after {timeout} s: {j}")
            time.sleep(0.5)

    # --- internals -----------------------------------------------------------------------------------------
    def _spawn(self, cmd, name):
        with open(self.dir / "log" / f"{name}.stdout", "w") as log:
            self.procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                preexec_fn=die_with_parent), name))

    def _ok(self, cmd):
        return subprocess.run(cmd, capture_output=True, env=self.env).returncode == 0

    def _wait_for(self, cond, what, timeout=30, fail=True):
        t = time.time()
        while not cond():
            for p, name in self.procs:
                if p.poll() is not None:
                    log = (self.dir / "log" / f"{name}.stdout").read_text()
                    raise RuntimeError(f"{name} exited {p.returncode} while waiting for {what}:\n{log}")
            if time.time() - t > timeout:
                if fail:
                    raise TimeoutError(f"waited {timeout} s for {what}")
                return
            time.sleep(0.2)

    def _conf(self, sock):
        d = self.dir
        return f"""ClusterName=lethe-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock},cred_expire=10
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
