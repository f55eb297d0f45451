#!/usr/bin/env bash
# End-to-end demo of what lethe does today (see README "What works"): builds lethe, creates a tiny random GPT-Neo
# as a Hugging Face folder with the GPT-2 tokenizer, tokenizes, generates (greedy and beam) and scores, then
# trains the tiny model on two MPI ranks (ZeRO-2) and resumes that run on one rank for 10 more steps.
# Everything lands in results/demo/. The unlearning demo replaces this once `lethe unlearn` exists.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash launch/build.sh lethe
tok=${LETHE_SHARED_DATA:-$root/../shared/data}/gpt2_tokenizer
[ -f "$tok/encoder.json" ] || { echo "demo: GPT-2 tokenizer files not found in $tok (set LETHE_SHARED_DATA)"; exit 2; }
out=results/demo
mkdir -p "$out"
lethe=build/lethe
set -x
$lethe --version
$lethe config --config configs/demo.yaml --dump > "$out/config.resolved.yaml"
$lethe init-model --config configs/demo.yaml --tokenizer "$tok" --out "$out/model" --force
$lethe tokenize --tokenizer "$out/model" --text "Iterative contrastive unlearning forgets memorised text." --json
$lethe generate --model "$out/model" --prompt "The quick brown fox" --prompt "Hello" -n 16 --json | tee "$out/greedy.jsonl"
$lethe generate --model "$out/model" --prompt "The quick brown fox" -n 16 -k 4 --json | tee "$out/beam4.jsonl"
printf '%s\n' '{"text": "The quick brown fox jumps over the lazy dog."}' '{"ids": [464, 2068, 7586, 21831]}' \
  > "$out/score_input.jsonl"
$lethe score --model "$out/model" --input "$out/score_input.jsonl"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
mpirun -np 2 --bind-to none $lethe train --config configs/train/tiny.yaml --set run.output_dir="$out" --set run.name=train
$lethe train --config configs/train/tiny.yaml --set run.output_dir="$out" --set run.name=train --set train.steps=40 \
  --resume auto
$lethe plan --model tiny --ranks 2 --zero 2 --batch 2 --seq 64
set +x
echo "demo: outputs in $out/ (model/, config.resolved.yaml, greedy.jsonl, beam4.jsonl, train/: metrics.h5,"
echo "      checkpoints/, final/)"
