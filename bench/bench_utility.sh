#!/usr/bin/env bash
# Utility-suite benchmark, lethe beside lm-evaluation-harness (HF backend, bench/peer_utility.py) in the same
# run, same machine, threads and batch size: zero-shot PIQA + ARC-Easy + WinoGrande (the first N examples of
# each shipped slice) with lm-eval's task definitions (configs/utility/lm-eval.yaml on the lethe side), on the
# GPT-Neo-125M shape with random weights (speed does not depend on them). Both sides are timed from "model
# loaded" to "metrics ready"; the accuracies must agree.
# Usage: bash bench/bench_utility.sh [limit=100] [threads=2] [batch=32]   (build first). Writes results/bench/utility/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
limit=${1:-100}
threads=${2:-2}
batch=${3:-32}
py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
shared=${LETHE_SHARED_DATA:-$root/../shared/data}
out=results/bench/utility
rm -rf "$out" && mkdir -p "$out"
"$py" - "$out" "$shared" <<'PY'
import pathlib, shutil, sys, torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM
out, shared = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
torch.manual_seed(0)
GPTNeoForCausalLM(GPTNeoConfig(hidden_size=768, num_layers=12, num_heads=12, attention_types=[[["global", "local"], 6]],
                               embed_dropout=0.0, resid_dropout=0.0, attention_dropout=0.0)).save_pretrained(out / "neo125m")
for a, b in [("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")]:
    shutil.copy(shared / "gpt2_tokenizer" / a, out / "neo125m" / b)
PY
echo "== lethe: PIQA + ARC-Easy + WinoGrande, $limit examples each, $threads threads, batch $batch"
sed "s/^batch_size: .*/batch_size: $batch/; s#^data_dir: .*#data_dir: $shared#" configs/utility/lm-eval.yaml > "$out/suite.yaml"
build/lethe eval --model "$out/neo125m" --suite "$out/suite.yaml" --tasks piqa,arc_easy,winogrande --limit "$limit" \
  --set runtime.threads="$threads" --out "$out/lethe.json" 2>&1 | tee "$out/lethe.log" | grep -E "utility"
echo "== lm-eval $("$py" -c 'import lm_eval; print(lm_eval.__version__)' 2>/dev/null || echo '?') (HF backend)"
OMP_NUM_THREADS=$threads "$py" bench/peer_utility.py --model "$out/neo125m" --shared-data "$shared" --work "$out" \
  --limit "$limit" --threads "$threads" --batch-size "$batch" --out "$out/peer.json"
"$py" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
mine, peer = json.load(open(f"{out}/lethe.json"))["utility"], json.load(open(f"{out}/peer.json"))
acc = {t: mine["tasks"][t]["acc"] for t in peer["acc"]}
lethe_s = mine["seconds"] + mine.get("prepare_seconds", 0.0)  # reading + tokenising + scoring, as the peer
res = {"limit": peer["limit"], "threads": peer["threads"], "batch_size": peer["batch_size"], "lethe_s": lethe_s,
       "peer_s": peer["seconds"], "speedup": peer["seconds"] / lethe_s, "lethe_acc": acc, "peer_acc": peer["acc"]}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
print(f"suite: lethe {lethe_s:.1f} s, lm-eval {peer['seconds']:.1f} s -> {res['speedup']:.2f}x")
for t in acc:
    print(f"  {t}: acc lethe {acc[t]:.4f}, lm-eval {peer['acc'][t]:.4f}{'' if abs(acc[t] - peer['acc'][t]) < 1e-9 else '  DIFFERENT'}")
PY
