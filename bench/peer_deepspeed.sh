#!/usr/bin/env bash
# Launches bench/peer_deepspeed.py (DeepSpeed ZeRO on CPU over gloo) on one host with torchrun.
# Usage: bash bench/peer_deepspeed.sh [peer_deepspeed.py flags...]
#   e.g. bash bench/peer_deepspeed.sh --seq 128 --micro-batch 2 --global-batch 8 --steps 2 --warmup 1 --threads 1
# Env: LETHE_VENV (default ~/.cache/lethe/venv, needs `pip install deepspeed`), NPROC (ranks, default 2),
#      MASTER_PORT (default 29533), PEER (the script to run, default bench/peer_deepspeed.py).
#      Threads per rank come from --threads (default 1); OMP_NUM_THREADS follows it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LETHE_VENV:-$HOME/.cache/lethe/venv}
nproc=${NPROC:-2}

# Per-rank thread count: the value of --threads if given, else 1; OpenMP/MKL pools match torch's.
threads=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --threads) threads=${args[i + 1]} ;;
    --threads=*) threads=${args[i]#--threads=} ;;
  esac
done

export DS_ACCELERATOR=cpu          # DeepSpeed's CPU accelerator; without oneccl bindings it picks gloo
export LOCAL_SIZE=$nproc           # CPU accelerator's device_count(); otherwise it shells out to numactl
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads TOKENIZERS_PARALLELISM=false
export CUDA_VISIBLE_DEVICES=""     # the torch wheel is a CUDA build; keep it off any GPU

exec "$venv/bin/torchrun" --nnodes 1 --nproc_per_node "$nproc" \
  --master_addr 127.0.0.1 --master_port "${MASTER_PORT:-29533}" \
  "${PEER:-$root/bench/peer_deepspeed.py}" "$@"
