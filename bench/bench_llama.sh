#!/usr/bin/env bash
# Llama beside transformers in one run: a training step (batch 8 x 256, fp32, AdamW) and greedy / 2-beam
# generation (batch 8, 64-token prompts, 64 new tokens) on a ~125M Llama shape — 12 layers, hidden 768, GQA 12
# query / 4 key-value heads, MLP 2048, vocabulary 32000, untied head, no EOS (every row runs to the end) — both
# sides randomly initialised, same threads. Prints lethe/peer ratios; the JSON lines go to results/bench/.
# Usage: bash bench/bench_llama.sh [threads=2]     (build first: bash launch/build.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
threads=${1:-2}
py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
out=results/bench
shape=$out/llama-125m-shape
mkdir -p "$out"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads TOKENIZERS_PARALLELISM=false

# The architecture as a config.json (no weights): both sides build it from this file.
"$py" - "$shape" <<'PY'
import sys
from transformers import LlamaConfig
LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
            num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
            bos_token_id=None, eos_token_id=None, pad_token_id=None).save_pretrained(sys.argv[1])
PY

echo "== training step: Llama ~125M shape, batch 8 x 256, fp32, AdamW, $threads threads"
build/bench/bench_train --preset "$shape" --batch 8 --seq 256 --threads "$threads" | tee "$out/llama_train_lethe.json"
"$py" bench/peer_train.py --model "$shape" --batch 8 --seq 256 --threads "$threads" | tee "$out/llama_train_peer.json"

echo "== generation: batch 8, 64-token prompts, 64 new tokens, greedy and 2-beam"
build/bench/bench_generate --preset "$shape" --batch 8 --prompt 64 --new 64 --threads "$threads" \
  | tee "$out/llama_generate_lethe.json"
"$py" bench/peer_generate.py --model "$shape" --batch 8 --prompt 64 --new 64 --threads "$threads" \
  | tee "$out/llama_generate_peer.json"

"$py" - "$out" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
rd = lambda f: [json.loads(l) for l in (d / f).read_text().splitlines() if l.strip()]
tl, tp = rd("llama_train_lethe.json")[0], rd("llama_train_peer.json")[0]
print(f"\ntraining   lethe {tl['tokens_per_s']:8.1f} tok/s  peer {tp['tokens_per_s']:8.1f} tok/s  "
      f"ratio {tl['tokens_per_s'] / tp['tokens_per_s']:.2f}x  lethe at {100 * tl['fraction_of_peak']:.0f}% of "
      f"peak mm ({tl['peak_mm_flops_per_s'] / 1e9:.0f} GFLOP/s)")
for gl, gp in zip(rd("llama_generate_lethe.json"), rd("llama_generate_peer.json")):
    print(f"generate k={gl['num_beams']}  lethe {gl['seconds']:6.2f} s  peer {gp['seconds']:6.2f} s  "
          f"ratio {gp['seconds'] / gl['seconds']:.2f}x  (new tokens {gl['new_tokens']} / {gp['new_tokens']})")
PY
