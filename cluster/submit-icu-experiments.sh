#!/usr/bin/env bash
# Submits ICU's five experiments as a job array and the aggregation job that waits for all of them
# (--dependency=afterok: it runs only when every task succeeded, after any number of requeues).
#   cluster/submit-icu-experiments.sh [CONFIG [lethe options]]
# Extra sbatch options for both jobs go in LETHE_SBATCH (e.g. "--partition=gpu --account=abc"); each
# experiment asks for LETHE_GPUS_PER_NODE GPUs (default 1; 0 = none, for CPU partitions).
# Prints the two job ids; `squeue -u $USER` and `lethe status results/run-exp0` follow them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
config=${1:-configs/icu/neo125m.yaml}
if (($#)); then shift; fi
out_dir=$("${LETHE_BIN:-build/lethe}" config --config "$config" "$@" --get run.output_dir)
mkdir -p results/slurm
read -r -a extra <<<"${LETHE_SBATCH:-}"
gpus=()
if [ "${LETHE_GPUS_PER_NODE:-1}" != 0 ]; then gpus=(--gpus-per-node="${LETHE_GPUS_PER_NODE:-1}"); fi
array=$(sbatch --parsable ${extra[@]+"${extra[@]}"} ${gpus[@]+"${gpus[@]}"} cluster/icu-experiments.sbatch "$config" "$@")
array=${array%%;*}
runs=()
for i in 0 1 2 3 4; do runs+=("$out_dir/${LETHE_RUN_PREFIX:-run}-exp$i"); done
report=$(sbatch --parsable ${extra[@]+"${extra[@]}"} --dependency="afterok:$array" cluster/icu-report.sbatch "${runs[@]}")
echo "experiments: job array $array (tasks 0-4); report: job ${report%%;*} after all succeed"
echo "report files: $out_dir/report/ (report.md, summary.csv, runs.csv, curves-*.svg)"
