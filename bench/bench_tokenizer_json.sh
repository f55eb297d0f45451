#!/usr/bin/env bash
# tokenizer.json encode throughput, lethe vs HF tokenizers, single thread, on every question and answer of
# TOFU's full.json: the Llama-2 (legacy and Metaspace) and Llama-3 layouts, trained on the same texts by
# tests/reference/make_tokenizer_json_fixtures.py (vocabularies of ~1.8k and ~2k tokens).
#
# usage: bench/bench_tokenizer_json.sh [--shared-data DIR] [--passes N]     (after launch/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared/data passes=5
while [[ $# -gt 0 ]]; do
  case $1 in
    --shared-data) shared=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    *) echo "usage: $0 [--shared-data DIR] [--passes N]" >&2; exit 2 ;;
  esac
done
py=${LETHE_PYTHON:-$HOME/.cache/lethe/venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$py tests/reference/make_tokenizer_json_fixtures.py --out "$tmp" --shared-data "$shared" >/dev/null
for layout in llama2_legacy llama2_meta llama3; do
  l=$(build/bench/bench_tokenizer --passes "$passes" --tokenizer "$tmp/$layout" "$shared/tofu/full.json")
  p=$(TOKENIZERS_PARALLELISM=false $py bench/bench_tokenizer_peer.py --passes "$passes" --tokenizer "$tmp/$layout" \
    "$shared/tofu/full.json")
  $py - "$layout" "$l" "$p" <<'PY'
import json, sys
l, p = json.loads(sys.argv[2]), json.loads(sys.argv[3])
assert l["tokens"] == p["tokens"], f"token counts differ: lethe {l['tokens']}, HF {p['tokens']}"
print(f"{sys.argv[1]:14s} lethe {l['mb_per_s']:6.2f} MB/s  HF tokenizers {p['mb_per_s']:6.2f} MB/s  "
      f"ratio {l['mb_per_s'] / p['mb_per_s']:.2f}x  ({l['rows']} texts, {l['tokens']} tokens)")
PY
done
