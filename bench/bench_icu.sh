#!/usr/bin/env bash
# ICU benchmark, lethe beside the reference's Python loop (bench/peer_icu.py) in the same run, same machine and
# thread count: one training epoch and one full validation pass (MA, EL10, 2-beam 50-token generation, BLEU,
# BERTScore) on P pairs of 200-token extraction-benchmark rows (exp0's first P targets, TF-IDF neighbours),
# GPT-Neo-125M shape (random weights: speed does not depend on them) and a BERT-base-shaped scorer read at
# layer 9 (random weights, a WordPiece vocabulary trained offline on the target texts).
# Usage: bash bench/bench_icu.sh [pairs=128] [threads=2]   (build first). Writes results/bench/icu/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
pairs=${1:-128}
threads=${2:-2}
py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
shared=${LETHE_SHARED_DATA:-$root/../shared/data}
out=results/bench/icu
rm -rf "$out" && mkdir -p "$out"
"$py" - "$out" "$shared" "$pairs" <<'PY'
import csv, pathlib, shutil, sys, torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, GPTNeoConfig, GPTNeoForCausalLM
out, shared, pairs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
GPTNeoForCausalLM(GPTNeoConfig(hidden_size=768, num_layers=12, num_heads=12, attention_types=[[["global", "local"], 6]],
                               embed_dropout=0.0, resid_dropout=0.0, attention_dropout=0.0)).save_pretrained(out / "neo125m")
for a, b in [("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")]:
    shutil.copy(shared / "gpt2_tokenizer" / a, out / "neo125m" / b)
rows = list(csv.DictReader(open(shared / "icu/exp/exp0/lm_extraction_128_0.csv", newline="")))
with open(out / "targets.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["doc_id"]); [w.writerow([r["doc_id"]]) for r in rows[:pairs]]
wp = BertWordPieceTokenizer(lowercase=True)
wp.train_from_iterator([r["text"] for r in rows], vocab_size=8000, min_frequency=1)
(out / "bert").mkdir()
wp.save_model(str(out / "bert"))
BertModel(BertConfig(vocab_size=wp.get_vocab_size())).eval().save_pretrained(out / "bert")
(out / "bert" / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "BertTokenizer", "model_max_length": 512}\n')
PY
common=(--set model.path="$out/neo125m" --set prep.source="$shared/lm_extraction/train_dataset.npy"
  --set prep.forget_csv="$out/targets.csv" --set prep.output_dir="$out" --set prep.name=pairs
  --set unlearn.dataset="$out/pairs" --set runtime.threads="$threads" --set run.output_dir="$out")
build/lethe prep "${common[@]}"
echo "== lethe: $pairs pairs, 1 process x $threads threads"
build/lethe unlearn "${common[@]}" --set run.name=lethe --set unlearn.max_epochs=1 --set unlearn.bleu=0 --set unlearn.f1=0 \
  --set unlearn.bert_path="$out/bert" --set unlearn.save_final=false --set metrics.flush_seconds=0 2>&1 | tee "$out/lethe.log" | grep -E "validation|step"
echo "== Python reference loop (transformers generate, bert_score, nltk)"
OMP_NUM_THREADS=$threads "$py" bench/peer_icu.py --model "$out/neo125m" --pairs "$out/pairs/pairs.h5" --bert "$out/bert" \
  --layers 9 --tokenizer "$out/neo125m" --threads "$threads" --out "$out/peer.json"
"$py" - "$out" <<'PY'
import h5py, json, sys
out = sys.argv[1]
with h5py.File(f"{out}/lethe/metrics.h5", "r") as f:
    train = float(f["train/step_seconds"][:].sum()); val = float(f["epoch/seconds"][0])
peer = json.load(open(f"{out}/peer.json"))
res = {"pairs": peer["pairs"], "threads": peer["threads"], "lethe_train_epoch_s": train, "peer_train_epoch_s": peer["train_epoch_s"],
       "train_speedup": peer["train_epoch_s"] / train, "lethe_validation_s": val, "peer_validation_s": peer["validation_s"],
       "validation_speedup": peer["validation_s"] / val}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
print(f"training epoch: lethe {train:.1f} s, peer {peer['train_epoch_s']:.1f} s -> {res['train_speedup']:.2f}x")
print(f"validation:     lethe {val:.1f} s, peer {peer['validation_s']:.1f} s -> {res['validation_speedup']:.2f}x")
PY
