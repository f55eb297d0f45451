#!/usr/bin/env bash
# Sentence embeddings of ICU's rows with all-MiniLM-L6-v2: `lethe prep` (embedder bert, clean-up hf4, exact k-NN)
# beside its peer, sentence-transformers' SentenceTransformer.encode + a numpy exact search, on the same texts, the
# same thread count, in the same run. ROWS rows of train_dataset.npy (default 1000; 15000 = the whole source, ~8
# min per side on 2 cores), exp0's targets among them.
#   bash bench/bench_minilm.sh [THREADS=2] [ROWS=1000]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
threads=${1:-2}
rows=${2:-1000}
py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
shared=${LETHE_SHARED_DATA:-$root/../shared/data}
minilm=${LETHE_MODELS:-$HOME/.cache/lethe/models}/all-MiniLM-L6-v2
out=$root/results/bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

"$py" - "$shared" "$tmp" "$rows" <<'PY'
import csv, sys, numpy as np
shared, tmp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = np.load(f"{shared}/lm_extraction/train_dataset.npy")
targets = sorted(int(r["doc_id"]) for r in csv.DictReader(open(f"{shared}/icu/exp/exp0/lm_extraction_128_0.csv")))
keep = sorted(set(targets) | set(i for i in range(len(rows)) if i not in set(targets))) if n >= len(rows) else \
    sorted(set(targets) | set([i for i in range(len(rows)) if i not in set(targets)][:n - len(targets)]))
np.save(f"{tmp}/slice.npy", rows[keep])
with open(f"{tmp}/exp0.csv", "w") as f:
    f.write("doc_id\n" + "".join(f"{keep.index(t)}\n" for t in targets))
PY

t0=$(date +%s.%N)
"$root/build/lethe" prep --set prep.source="$tmp/slice.npy" --set prep.forget_csv="$tmp/exp0.csv" \
  --set prep.embedder=bert --set prep.embedder_path="$minilm" --set tokenizer.path="$shared/gpt2_tokenizer" \
  --set tokenizer.decode_cleanup=hf4 --set prep.batch_size=32 --set prep.output_dir="$tmp" \
  --set prep.name=lethe --set runtime.threads="$threads" > "$tmp/lethe.log" 2>&1
t1=$(date +%s.%N)
lethe_s=$(echo "$t1 - $t0" | bc)

"$py" - "$tmp" "$shared" "$minilm" "$threads" "$lethe_s" "$rows" "$out/minilm.json" <<'PY'
import json, pathlib, sys, time
import numpy as np, torch, h5py
sys.path.insert(0, "tests/reference")  # the oracle's decode and clean-up
from make_minilm_fixtures import clean_up_tokenization, gpt2_decoder
tmp, shared, minilm, threads, lethe_s, rows, out = sys.argv[1:]
torch.set_num_threads(int(threads))
t0 = time.time()
from sentence_transformers import SentenceTransformer
data = np.load(f"{tmp}/slice.npy").astype(np.int64)
targets = [int(l) for l in open(f"{tmp}/exp0.csv").read().split()[1:]]
gpt2 = gpt2_decoder(pathlib.Path(shared) / "gpt2_tokenizer")
texts = [clean_up_tokenization(t) for t in gpt2.decode_batch(data[:, 100:].tolist(), skip_special_tokens=False)]
e = SentenceTransformer(minilm, device="cpu").encode(texts, batch_size=32).astype(np.float64)
pool = np.setdiff1d(np.arange(len(data)), targets)
q = e[targets]
d = (q ** 2).sum(1)[:, None] + (e[pool] ** 2).sum(1)[None, :] - 2 * q @ e[pool].T
ids = pool[np.argsort(d, axis=1, kind="stable")[:, :10]]
peer_s = time.time() - t0
with h5py.File(f"{tmp}/lethe/pairs.h5", "r") as f:
    same = float((f["neighbours/ids"][:, 0] == ids[:, 0]).mean())
r = {"rows": int(rows), "threads": int(threads), "lethe_s": float(lethe_s), "peer_s": peer_s,
     "speedup": peer_s / float(lethe_s), "same_first_neighbour": same}
json.dump(r, open(out, "w"), indent=1)
print(f"minilm prep, {rows} rows, {threads} threads: lethe {float(lethe_s):.1f} s, sentence-transformers + numpy "
      f"{peer_s:.1f} s -> {r['speedup']:.2f}x; same first neighbour for {same:.1%} of exp0's targets")
PY
