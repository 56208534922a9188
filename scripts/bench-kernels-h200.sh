#!/usr/bin/env bash
# Issue 12's measurement in one device call (H200): PyTorch's rows, the kernel-version and decoder-matmul
# tests on the GPU,
# `longctx bench kernels` beside PyTorch, and the Dawn toggles A/B (robustness, workgroup-memory
# init, validation) on the fastest versions at 16K. Run from a folder holding dist/ and scripts/ with
# node_modules resolvable (the coordinator's checkout, or .kern/ with a node_modules link):
#   source .device/prelude.sh && bash scripts/bench-kernels-h200.sh      (results under $OUT)
# Every step has its own time limit and writes as it goes; $OUT/kernels.tar.gz holds everything.
set -uo pipefail
out="${OUT:-bench-kernels-out}"
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
trap 'tar -C "$work" -czf "$out/kernels.tar.gz" .' EXIT
deadline=$(( $(date +%s) + ${SWEEP_SECONDS:-400} ))
left() { echo $(( deadline - $(date +%s) )); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$work/gpu.txt" 2>&1
timeout "$(cap 100)" python3 scripts/torch_kernels_bench.py --out "$work/torch.json" > "$work/torch.log" 2>&1
echo "torch: $(wc -l < "$work/torch.log") lines, $(left) s left" >&2
timeout "$(cap 130)" node --test --test-concurrency=1 dist/test/kernel-versions.test.js dist/test/decoder-matmul.test.js \
  > "$work/test.txt" 2>&1
echo "test: $(grep -c '^ok' "$work/test.txt") ok, $(grep -c '^not ok' "$work/test.txt") not ok, $(left) s left" >&2
ref=(); [ -s "$work/torch.json" ] && ref=(--reference "$work/torch.json")
timeout "$(cap 150)" node dist/src/cli/main.js bench kernels "${ref[@]}" --out-dir "$work" --tag default \
  ${KERNEL_ARGS:-} > "$work/bench.out" 2>&1
echo "bench: $(left) s left" >&2
for t in disable_robustness disable_workgroup_init skip_validation disable_robustness,disable_workgroup_init,skip_validation; do
  [ "$(left)" -gt 25 ] || break
  timeout "$(cap 60)" node dist/src/cli/main.js bench kernels "${ref[@]}" --out-dir "$work" --toggles "$t" \
    --families flash,matmul,gemv --lengths 16K --seconds 0.15 --versions "${AB_VERSIONS:-tc2-128x32,tc2-64x32,sgmat-v1,tc-128x128x32,tc-128x128x64,tc-256x128x32-s,gemv-r2,gemv-r1t128}" \
    > "$work/ab-$t.out" 2>&1
done
echo "done, $(left) s left" >&2
