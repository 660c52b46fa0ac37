#!/usr/bin/env bash
# Every CPU benchmark of issue 6 in one go, on a machine with nothing else running (check `uptime` first: the
# ratios hold under load only roughly, see bench/README.md). Each script's JSON line goes to
# bench/results/DATE-cpu-NAME.json (DATEb-, DATEc-, ... for later runs that day), its table to the console.
# Needs .venv, .venv-torch (launch/test_torch.sh) and .venv-bench (bench/setup_bench.sh). About 8 minutes on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/env.sh  # as launch/*.sh run jobs (huge pages for the host heap), for both sides of each comparison
bash bench/setup_bench.sh >/dev/null
# A second run on the same day gets its own prefix (DATEb, DATEc, ...): earlier results stay as they were.
day=$(date +%F); out=bench/results/$day-cpu
for suffix in b c d e f g h i j k; do
  compgen -G "$out-*.json" >/dev/null || break
  out=bench/results/$day$suffix-cpu
done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {  # the console gets the table, the results file the last JSON line
  local name=$1 log; shift; log=$(mktemp)
  echo "== $name: $*"; .venv/bin/python "$@" | tee "$log"; grep '^{' "$log" | tail -1 > "$out-$name.json"; rm -f "$log"
}
# Both precisions on both sides ('auto' picks one per CPU; the PyTorch side autocasts to bf16 with JAX's).
run train_step_f32 bench/train_step.py --set model.dtype=float32 --repeats 5
run train_step_bf16 bench/train_step.py --set model.dtype=bfloat16 --repeats 5
run train_step_einsum bench/train_step.py --set model.attention=einsum --set model.dtype=float32 --repeats 5
run step_ab_dtype bench/step_ab.py --set model.dtype=float32 --variant bf16=model.dtype=bfloat16 --rounds 5
run pca_fit_100k bench/pca_fit.py --num_patches 100000
run pca_fit_1m bench/pca_fit.py --num_patches 1000000 --repeats 3
run pca_fit_fashion bench/pca_fit.py --num_patches 1000000 --source fashion_mnist --d 16
run input_pipeline bench/input_pipeline.py
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
