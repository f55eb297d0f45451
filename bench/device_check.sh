#!/usr/bin/env bash
# The GPU device check end to end on one GPU node, in under 8 minutes (tests/gpu/device_check.h says what it
# checks): builds tests/gpu/standalone against the Python's torch wheel into build-gpu/, runs
# lethe_device_check, runs bench/device_peer.py (transformers on the same GPU) for throughput ratios, adds
# `lethe plan` for the 2.7B memory step when build/lethe exists, merges it all into one JSON, prints a summary.
#
# Usage: bash bench/device_check.sh [--dry-run] [--out FILE] [--python PY] [-- CHECK_ARGS...]
#   --dry-run   print every step and check it would run and exit 0, building nothing (CI runs this)
#   --out FILE  the results JSON (default results/device_check.json; the peer's and plan's beside it)
#   --python PY a Python with torch (and transformers, for the peer); default $LETHE_VENV/bin/python, else python3
#   CHECK_ARGS  go to lethe_device_check, e.g. -- --skip memory_2p7b_step
# Needs: a C++20 compiler (g++ >= 11), CMake >= 3.18, that Python. Exits non-zero when the build fails or a
# check fails or does not finish.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

budget=470  # seconds for everything: 8 minutes less a margin
dry_run=0
out=$root/results/device_check.json
py=""
check_args=()
while (($#)); do
  case $1 in
    --dry-run) dry_run=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    --python) py=${2:?--python needs an interpreter}; shift ;;
    --) shift; check_args=("$@"); break ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
venv_py=${LETHE_VENV:-$HOME/.cache/lethe/venv}/bin/python
if [[ -z $py ]]; then
  if [[ -x $venv_py ]]; then py=$venv_py; else py=python3; fi
fi
[[ $out == /* ]] || out=$PWD/$out
build=$root/build-gpu
bin=$build/lethe_device_check
peer_json=${out%.json}.peer.json
plan_json=${out%.json}.plan.json
jobs=$(nproc 2>/dev/null || echo 4)
generator=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
checks=(parity_fp32 parity_bf16 generate sdpa_kernel zero_cuda_vs_cpu precision nccl_collectives rank_death throughput
        memory_2p7b_step)
plan_cmd=(build/lethe plan --model gpt-neo-2.7B --ranks 1 --zero 2 --dtype bfloat16 --batch 4 --seq 200
          --reference --device cuda --json)
# Per-step time limits (seconds); each is also cut to what is left of the budget.
t_configure=60 t_build=180 t_check=240 t_peer=90 t_plan=30

if ((dry_run)); then
  echo "bash bench/device_check.sh would, within $budget s:"
  echo "1. configure (<= $t_configure s): cmake -S tests/gpu/standalone -B build-gpu ${generator[*]}" \
    "-DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=\$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
    "-DLETHE_PYTHON=$py"
  echo "2. build (<= $t_build s): cmake --build build-gpu -j $jobs"
  echo "3. check (<= $t_check s): build-gpu/lethe_device_check --json $out ${check_args[*]}"
  if [[ -x $bin ]] && "$bin" --dry-run "${check_args[@]}" | sed 's/^/     /'; then
    :
  else
    echo "     checks (the built program prints what each does): ${checks[*]}"
  fi
  echo "4. peer (<= $t_peer s): $py bench/device_peer.py --json $peer_json"
  echo "5. plan (<= $t_plan s, only if build/lethe exists): ${plan_cmd[*]} > $plan_json"
  echo "6. merge the peer's numbers (lethe/peer ratios) and the plan (measured/plan memory) into $out; summary"
  exit 0
fi

left() { echo $((budget - SECONDS)); }

# run_step NAME LIMIT CMD...: runs CMD under `timeout`, for LIMIT seconds or what is left of the budget.
run_step() {
  local name=$1 limit=$2 t rc=0
  shift 2
  t=$(left)
  ((t < limit)) || t=$limit
  if ((t < 10)); then
    echo "== $name: skipped, the $budget s budget is spent" >&2
    return 124
  fi
  echo "== $name (<= $t s): $*" >&2
  timeout --kill-after=10 "$t" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then echo "== $name: timed out after $t s" >&2; fi
  return "$rc"
}

mkdir -p "$(dirname "$out")"
if ! torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)'); then
  echo "$py has no torch: pass --python, or set LETHE_VENV" >&2
  exit 1
fi
run_step configure "$t_configure" cmake -S tests/gpu/standalone -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$torch_prefix" "-DLETHE_PYTHON=$py" >&2 ||
  { echo "configure failed (see above)" >&2; exit 1; }
run_step build "$t_build" cmake --build "$build" -j "$jobs" >&2 || { echo "build failed (see above)" >&2; exit 1; }

rm -f "$out" "$peer_json" "$plan_json"
check_rc=0
run_step check "$t_check" "$bin" --json "$out" "${check_args[@]}" || check_rc=$?
run_step peer "$t_peer" "$py" bench/device_peer.py --json "$peer_json" >/dev/null ||
  echo "== peer failed: no ratios" >&2
if [[ -x build/lethe ]]; then
  run_step plan "$t_plan" "${plan_cmd[@]}" >"$plan_json" || { echo "== plan failed" >&2; rm -f "$plan_json"; }
else
  echo "== plan: no build/lethe here, no memory plan to compare with" >&2
fi

"$py" - "$out" "$peer_json" "$plan_json" "$check_rc" <<'PY'
"""Merges the peer and the plan into the check's JSON and prints the summary; exit 1 unless every check ran
and passed."""
import json, os, sys

out, peer_path, plan_path, check_rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


res = load(out) or {"tool": "lethe_device_check", "complete": False, "steps": []}
steps = {s["name"]: s for s in res.get("steps", [])}
peer, plan = load(peer_path), load(plan_path)
if peer is not None:
    res["peer"] = peer
    thr = steps.get("throughput", {})
    res["lethe_over_peer"] = {k: thr[k] / peer[k] for k in ("train_fp32_tokens_per_s", "train_bf16_tokens_per_s",
                                                            "generate_fp32_tokens_per_s", "generate_bf16_tokens_per_s")
                              if thr.get(k) and peer.get(k)}
if plan is not None:
    res["plan"] = {k: plan.get(k) for k in ("model", "total_bytes", "build_peak_bytes", "train_peak_bytes")}
    mem = steps.get("memory_2p7b_step", {})
    res["measured_over_plan"] = {
        f"{phase}_peak_reserved": mem[f"{phase}_peak_reserved_bytes"] / plan[key]
        for phase, key in (("build", "build_peak_bytes"), ("step", "train_peak_bytes"))
        if mem.get(f"{phase}_peak_reserved_bytes") and plan.get(key)}
if os.path.exists(out) or peer is not None:
    with open(out + ".tmp", "w") as f:
        json.dump(res, f, indent=2)
    os.replace(out + ".tmp", out)

print("\n== device check summary")
if res.get("skipped"):
    print(res.get("reason"))
    sys.exit(0)
dev = res.get("device", {})
print(f"GPU {dev.get('gpu', '?')}, torch {dev.get('torch', '?')}, NCCL {dev.get('nccl', '?')}, "
      f"CUDA runtime {dev.get('cuda_runtime', '?')}")
for s in res.get("steps", []):
    errors = "" if s["ok"] else "  " + "; ".join(s.get("errors", []))[:400]
    print(f"  [{'ok' if s['ok'] else 'FAIL':>4}] {s['name']:<18} {s.get('seconds') or 0:6.1f} s{errors}")
if not res.get("complete"):
    print("  the check did not finish (timed out or crashed): steps after the last one above are missing")
sdpa = steps.get("sdpa_kernel", {})
if sdpa:
    print("SDPA kernels: " + ", ".join(f"{k[:-7]} {v}" for k, v in sdpa.items() if k.endswith("_kernel")))
for k, v in res.get("lethe_over_peer", {}).items():
    print(f"{k[:-13]:<14} lethe {steps['throughput'][k]:9.0f} tok/s   transformers {res['peer'][k]:9.0f} tok/s"
          f"   lethe/peer {v:.2f}x")
mem = steps.get("memory_2p7b_step", {})
gib = 2.0 ** 30
for phase in ("build", "step"):
    if mem.get(f"{phase}_peak_reserved_bytes"):
        line = (f"2.7B {phase:<5} peak allocated {mem[f'{phase}_peak_allocated_bytes'] / gib:6.2f} GiB, "
                f"reserved {mem[f'{phase}_peak_reserved_bytes'] / gib:6.2f} GiB")
        ratio = res.get("measured_over_plan", {}).get(f"{phase}_peak_reserved")
        print(line + (f", {ratio:.2f}x lethe plan" if ratio else ""))
print(f"results: {out}")
ok = check_rc == 0 and res.get("complete") and all(s["ok"] for s in res.get("steps", []))
sys.exit(0 if ok else 1)
PY
