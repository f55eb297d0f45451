#!/usr/bin/env bash
# Distributed-engine benchmarks, lethe beside DeepSpeed in the same run:
#   1. `lethe train` step time, tokens/s, communication bytes and time, optimizer bytes per rank (vs 12Ψ/N)
#      at N = 1 and 2 ranks, on the GPT-Neo-125M shape and on a small shape;
#   2. DeepSpeed ZeRO-2 at N = 2 (CPU accelerator, gloo, torch AdamW), same model, global batch, threads;
#   3. checkpoint save and load throughput vs `dd` copying the same shard on the same disk (loads and dd reads
#      from disk: the page cache is dropped first).
# Usage: bash bench/bench_zero.sh [steps=4]   (build first; installs deepspeed from PyPI into the venv once)
# Writes results/bench/zero/*.json and prints a summary table (bench/zero_report.py).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
steps=${1:-4}
venv=${LETHE_VENV:-$HOME/.cache/lethe/venv}
py=$venv/bin/python
out=results/bench/zero
rm -rf "$out" && mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
"$py" -c 'import deepspeed' 2>/dev/null || DS_BUILD_OPS=0 "$py" -m pip install -q -r bench/requirements-bench.txt

# Load throughput is measured from disk, not the page cache, for lethe and dd alike (needs root; otherwise both
# read warm and the report says so).
drop_caches() { sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null && echo cold || echo warm; }

# Random token rows, 128 tokens each (one row = one sequence), enough for every global batch.
"$py" -c "import numpy as np; np.save('$out/rows.npy', np.random.default_rng(0).integers(0, 50257, (256, 128)).astype(np.uint16))"

# shape name: layers hidden heads
shapes=("neo125m 12 768 12" "small 4 256 8")
for s in "${shapes[@]}"; do
  read -r name layers hidden heads <<<"$s"
  for n in 1 2; do
    echo "== lethe train, $name shape, $n rank(s), ZeRO-2, global batch 8 x 128, 1 thread per rank"
    args=(train --set model.preset=gpt-neo-125m --set model.gpt_neo.num_layers="$layers" --set model.gpt_neo.hidden_size="$hidden"
      --set model.gpt_neo.num_heads="$heads" --set data.train_path="$out/rows.npy" --set train.steps=$((steps + 1))
      --set train.global_batch_size=8 --set train.micro_batch_size=2 --set optimizer.lr=1e-5 --set optimizer.weight_decay=0.01
      --set zero.stage=2 --set runtime.threads=1 --set train.save_final=false --set metrics.flush_seconds=0
      --set run.output_dir="$out" --set run.name="lethe-$name-$n")
    mpirun -np "$n" --bind-to none build/lethe "${args[@]}" 2>&1 | tee "$out/lethe-$name-$n.log" | grep -E "step $((steps + 1))/|checkpoint"
    if [ "$n" = 1 ]; then  # load throughput: resume the saved checkpoint (nothing left to train)
      drop_caches > "$out/cache-state.txt"
      build/lethe "${args[@]}" --resume auto 2>&1 | tee "$out/lethe-$name-$n-resume.log" | grep resumed
      # dd baseline on the same disk with the same bytes: copy the optimizer shard just written (fdatasync),
      # then read the copy back from disk.
      shard=$(ls -d "$out/lethe-$name-1/checkpoints"/step-*)/optim-00000.h5
      cat "$shard" > /dev/null
      dd if="$shard" of="$out/dd.bin" bs=16M conv=fdatasync 2>&1 | tail -1 | tee "$out/dd-write-$name.txt"
      drop_caches >> "$out/cache-state.txt"
      dd if="$out/dd.bin" of=/dev/null bs=16M 2>&1 | tail -1 | tee "$out/dd-read-$name.txt"
      rm -f "$out/dd.bin"
    fi
  done
  # The same 2-rank run with glibc's default allocator (LETHE_MALLOC_DEFAULT=1): less resident memory, slower.
  echo "== lethe train, $name shape, 2 ranks, glibc's default allocator"
  LETHE_MALLOC_DEFAULT=1 mpirun -np 2 -x LETHE_MALLOC_DEFAULT --bind-to none build/lethe "${args[@]}" \
    --set run.name="lethe-$name-2-malloc" --set checkpoint.every=0 2>&1 | tee "$out/lethe-$name-2-malloc.log" |
    grep -E "step $((steps + 1))/"
  echo "== DeepSpeed ZeRO-2, $name shape, 2 ranks"
  bash bench/peer_deepspeed.sh --layers "$layers" --hidden "$hidden" --heads "$heads" --seq 128 --micro-batch 2 \
    --global-batch 8 --steps "$steps" --warmup 1 --threads 1 --bucket-elems 16000000 | tee "$out/deepspeed-$name.json"
done

"$py" bench/zero_report.py "$out" "$steps"
