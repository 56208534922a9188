#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 580, prelude included) that checks the planner's new defaults
# on the H200 (issue 12): the strip (-c) kernel versions first, and a prefill chunk of 2048 on tensor cores.
#  1. the kernel-version, decoder-matmul and plan tests on the GPU: $OUT/test.txt, within 140 s;
#  2. PyTorch's kernel rows, then `longctx bench kernels` (flash and matmul, every version, 16K-128K) beside
#     them: $OUT/kernels/, within KERNEL_SECONDS (230);
#  3. scripts/bench-prefill-h200.sh: 16K prefill of the 1B shape at the default chunk, 512 and 2048, beside
#     transformers: $OUT/prefill-h200/, in what is left.
#   bash scripts/pack-device.sh      then      source .device/prelude.sh && bash scripts/h200-call-defaults.sh
# Dry run on lavapipe: OUT=/tmp/dry-def KERNEL_ARGS=--small CONTEXT=1K CHUNKS="default 128" \
#   BENCH_ARGS="--shape tiny" bash scripts/h200-call-defaults.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/kernels"
call_deadline "${CALL_SECONDS:-580}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
within "$(window 140)" node --test --test-concurrency=1 dist/test/kernel-versions.test.js \
  dist/test/decoder-matmul.test.js dist/test/plan.test.js > "$out/test.txt" 2>&1
stamp test $?
w=$(window "${KERNEL_SECONDS:-230}")
within "$(( w < 90 ? w : 90 ))" python3 scripts/torch_kernels_bench.py --out "$out/kernels/torch.json" \
  > "$out/kernels/torch.log" 2>&1
ref=(); [ -s "$out/kernels/torch.json" ] && ref=(--reference "$out/kernels/torch.json")
read -r -a kernelArgs <<< "${KERNEL_ARGS:-}"
within "$(window $(( w - 90 )))" node dist/src/cli/main.js bench kernels "${ref[@]}" --families flash,matmul \
  --out-dir "$out/kernels" --tag default "${kernelArgs[@]}" > "$out/kernels/bench.out" 2>&1
stamp kernels $?
OUT="$out" within "$(window 400)" bash scripts/bench-prefill-h200.sh > "$out/prefill.out" 2>&1
stamp prefill $?
{
  cat "$out/gpu.txt"
  echo "== test: $(grep -c '^ok' "$out/test.txt") ok, $(grep -c '^not ok' "$out/test.txt") not ok"
  grep -E "^not ok" "$out/test.txt" | head -n 5
  echo "== kernels: $(cat "$out/kernels-exit.txt")"
  grep -E "^\| " "$out/kernels/kernels-default.md" 2> /dev/null | cut -c1-200 | head -n 60
  echo "== prefill: $(cat "$out/prefill-exit.txt")"
  cat "$out/prefill.out"
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
