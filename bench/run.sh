#!/usr/bin/env bash
# Runs every benchmark beside its Python peer in one go, same thread count, and prints lethe/peer ratios.
# Usage: bash bench/run.sh [threads=2]     (build first: bash launch/build.sh)
# Run it on a quiet machine: the numbers are wall-clock.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
threads=${1:-2}
py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
data=${LETHE_SHARED_DATA:-$root/../shared/data}
out=results/bench
mkdir -p "$out"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads TOKENIZERS_PARALLELISM=false

echo "== training step: GPT-Neo-125M shape, batch 8 x 200, fp32, AdamW, $threads threads"
build/bench/bench_train --threads "$threads" | tee "$out/train_lethe.json"
$py bench/peer_train.py --threads "$threads" | tee "$out/train_peer.json"

echo "== generation: 125M shape, batch 8, 50-token prompt, 50 new tokens, greedy and 2-beam"
build/bench/bench_generate --threads "$threads" | tee "$out/generate_lethe.json"
$py bench/peer_generate.py --threads "$threads" | tee "$out/generate_peer.json"

echo "== tokenizer encode, single thread, shared validation texts"
csvs=("$data/icu/validation_data/pile.csv" "$data/icu/validation_data/wikitext.csv" "$data/icu/lambada.csv")
build/bench/bench_tokenizer --tokenizer "$data/gpt2_tokenizer" "${csvs[@]}" | tee "$out/tokenizer_lethe.json"
$py bench/bench_tokenizer_peer.py --tokenizer "$data/gpt2_tokenizer" "${csvs[@]}" | tee "$out/tokenizer_peer.json"

$py - "$out" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
rd = lambda f: [json.loads(l) for l in (d / f).read_text().splitlines() if l.strip()]
tl, tp = rd("train_lethe.json")[0], rd("train_peer.json")[0]
print(f"\ntraining   lethe {tl['tokens_per_s']:8.1f} tok/s  peer {tp['tokens_per_s']:8.1f} tok/s  "
      f"ratio {tl['tokens_per_s'] / tp['tokens_per_s']:.2f}x  lethe at {100 * tl['fraction_of_peak']:.0f}% of "
      f"peak mm ({tl['peak_mm_flops_per_s'] / 1e9:.0f} GFLOP/s); peak RSS lethe "
      f"{tl['peak_rss_bytes'] / 2**30:.2f} GiB, peer {tp['peak_rss_bytes'] / 2**30:.2f} GiB")
for gl, gp in zip(rd("generate_lethe.json"), rd("generate_peer.json")):
    print(f"generate k={gl['num_beams']}  lethe {gl['seconds']:6.2f} s  peer {gp['seconds']:6.2f} s  "
          f"ratio {gp['seconds'] / gl['seconds']:.2f}x  (new tokens {gl['new_tokens']} / {gp['new_tokens']})")
kl, kp = rd("tokenizer_lethe.json")[0], rd("tokenizer_peer.json")[0]
print(f"tokenizer  lethe {kl['mb_per_s']:6.2f} MB/s  peer {kp['mb_per_s']:6.2f} MB/s  "
      f"ratio {kl['mb_per_s'] / kp['mb_per_s']:.2f}x")
PY
