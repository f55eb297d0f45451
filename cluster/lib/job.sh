# shellcheck shell=bash
# The body every lethe batch script shares (sourced, after its #SBATCH header). It runs one lethe command as
# the allocation's tasks and turns Slurm's pre-emption signals into checkpoint + requeue:
#
#   - launch: `srun --mpi=pmix` when this Slurm has the PMIx plugin, else Open MPI's mpirun inside the
#     allocation (it reads the node list from Slurm); LETHE_LAUNCHER=srun|mpirun forces one;
#   - GPUs: only when the job was given some (SLURM_GPUS_ON_NODE or SLURM_JOB_GPUS set), so the same script
#     runs on CPU partitions. Then every task is bound to its cores (srun --cpu-bind=cores; mpirun
#     --map-by slot:PE=<cpus per task> --bind-to core) and starts through launch/lethe-rank, which keeps one
#     GPU per task and logs "rank R on HOST -> GPU g (cores …)". A job that asked --gpus-per-task has its
#     request repeated on srun with --gpu-bind (SLURM_GPU_BIND, default closest): Slurm hands each task its
#     GPU. Otherwise (--gpus-per-node) each task sees the node's GPUs and lethe-rank keeps entry (local rank
#     mod count) of CUDA_VISIBLE_DEVICES;
#   - the launcher runs in the background and the script waits, so the batch shell can take signals:
#     USR1 (from --signal=B:USR1@<s>, or `scancel --batch --signal=USR1 <job>`) and TERM (scancel, requeue,
#     pre-emption, the time limit) are forwarded to the job step as USR1. lethe agrees across ranks at the
#     next step boundary, saves a checkpoint and exits 143;
#   - 143 after a USR1 the script received: `scontrol requeue` (the job needs --requeue), and the next start
#     resumes from the newest checkpoint (--resume auto). 143 after a TERM: Slurm itself decides (a requeue
#     or pre-emption requeues, scancel ends the job). Any other exit code is a real failure: the job fails,
#     with lethe's message in the log, and is never requeued.
#
# Variables: LETHE_ROOT (the checkout; default the submit directory), LETHE_BIN (default
# $LETHE_ROOT/build/lethe), LETHE_LAUNCHER. Run history lands in <run>/metrics.h5 /launches (with
# SLURM_JOB_ID and SLURM_RESTART_COUNT) and /stops; `lethe status <run>` summarises it.

lethe_root=${LETHE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
lethe_bin=${LETHE_BIN:-$lethe_root/build/lethe}

lethe_log() { echo "[lethe-job $(date +%H:%M:%S)] $*"; }
lethe_fail() {
  lethe_log "error: $*" >&2
  exit 2
}

# Fills the array `launch` with the launcher for the allocation's tasks.
lethe_launcher() {
  local mode=${LETHE_LAUNCHER:-auto}
  if [ "$mode" = auto ]; then
    local plugins
    plugins=$(srun --mpi=list 2>&1 || true) # captured, not piped: grep -q would SIGPIPE srun under pipefail
    mode=mpirun
    if [[ $plugins == *pmix* ]]; then mode=srun; fi
  fi
  # GPUs on this node of the allocation: Slurm sets these only for a job that asked for GPUs.
  local gpus=${SLURM_GPUS_ON_NODE:-}
  if [ -z "$gpus" ] && [ -n "${SLURM_JOB_GPUS:-}" ]; then
    local ids
    IFS=, read -r -a ids <<<"$SLURM_JOB_GPUS"
    gpus=${#ids[@]}
  fi
  case $mode in
    srun)
      launch=(srun --mpi=pmix --kill-on-bad-exit=1)
      # Slurm 22.05+: srun no longer inherits --cpus-per-task from the batch allocation.
      if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then launch+=(--cpus-per-task="$SLURM_CPUS_PER_TASK"); fi
      if ((${gpus:-0} > 0)); then
        launch+=(--cpu-bind=cores)
        if [ -n "${SLURM_GPUS_PER_TASK:-}" ]; then
          launch+=(--gpus-per-task="$SLURM_GPUS_PER_TASK" --gpu-bind="${SLURM_GPU_BIND:-closest}")
        fi
      fi
      ;;
    mpirun)
      launch=(mpirun -np "${SLURM_NTASKS:-1}")
      # Without GPUs, unbound: each rank runs runtime.threads threads (see launch/lethe-run).
      if ((${gpus:-0} > 0)) && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
        launch+=(--map-by "slot:PE=$SLURM_CPUS_PER_TASK" --bind-to core)
      else
        launch+=(--bind-to none)
      fi
      if [ "$(id -u)" = 0 ]; then launch+=(--allow-run-as-root); fi
      if ((${gpus:-0} > 0)); then launch+=(-x LETHE_BIND_GPU=1 -x "LETHE_GPUS_PER_NODE=$gpus"); fi
      ;;
    *) lethe_fail "LETHE_LAUNCHER must be srun, mpirun or auto, got '$mode'" ;;
  esac
  if ((${gpus:-0} > 0)); then
    export LETHE_BIND_GPU=1 LETHE_GPUS_PER_NODE=$gpus # srun passes the environment on
    launch+=("$lethe_root/launch/lethe-rank")
  fi
}

# Sends USR1 to the running job step, if there is one yet.
lethe_forward() {
  if [ -n "${child:-}" ]; then kill -USR1 "$child" 2>/dev/null || true; fi
}

# lethe_run <lethe subcommand> [options]: runs it as the job step; returns only on success (exit 0).
lethe_run() {
  [ -x "$lethe_bin" ] || lethe_fail "no lethe binary at $lethe_bin: build it (bash launch/build.sh) or set LETHE_BIN"
  local launch child rc got=""
  lethe_launcher
  lethe_log "job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)}," \
    "start $((${SLURM_RESTART_COUNT:-0} + 1)) (SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-unset})," \
    "${SLURM_NTASKS:-1} task(s) on ${SLURM_JOB_NODELIST:-this node}"
  lethe_log "running: ${launch[*]} $lethe_bin $*"
  # Traps first, so that no signal finds the default action (which would end the batch shell). Forwarded as
  # USR1 in both cases: mpirun and srun pass it to every rank (SIGTERM to mpirun makes it kill them).
  child=""
  trap 'got=USR1; lethe_log "got SIGUSR1: asking lethe to checkpoint and stop"; lethe_forward' USR1
  trap '[ -n "$got" ] || got=TERM; lethe_log "got SIGTERM: asking lethe to checkpoint and stop"; lethe_forward' TERM
  "${launch[@]}" "$lethe_bin" "$@" &
  child=$!
  if [ -n "$got" ]; then lethe_forward; fi # a signal that came before the launch
  # `wait` returns early whenever a trapped signal arrives; the last wait collects the real exit code (bash
  # keeps the status of a reaped background child for a later `wait` on its pid).
  while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
  set +e
  wait "$child"
  rc=$?
  set -e
  trap '' USR1 TERM # from here on, signals must not end the shell before it has requeued the job
  case $rc in
    0) lethe_log "lethe finished" ;;
    143)
      if [ "$got" = USR1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        lethe_log "checkpoint saved (exit 143): requeueing job $SLURM_JOB_ID; it resumes from the newest checkpoint"
        scontrol requeue "$SLURM_JOB_ID" || lethe_log "scontrol requeue failed: was the job submitted with --requeue?"
      else
        lethe_log "checkpoint saved (exit 143) after SIG${got:-TERM}: Slurm decides whether the job runs again"
      fi
      exit 143
      ;;
    *)
      if [ "$got" = TERM ]; then
        # Slurm signals every process of the job: the ranks checkpoint on their own SIGTERM, but mpirun,
        # signalled too, reports 1 however they ended.
        lethe_log "stopped after SIGTERM (exit $rc): Slurm decides whether the job runs again"
      else
        lethe_log "lethe failed with exit code $rc (see its message above): not requeued"
      fi
      exit "$rc"
      ;;
  esac
}
