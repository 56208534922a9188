#!/usr/bin/env bash
# Issue 14's device check in one call (H200): the NaN policy where lavapipe cannot run it (the
# subgroup-matrix flash v1, tc2 and CCA kernels), and the flash speed after the policy's flag, to hold
# beside the tc2 / sgmat-v1 rows of docs/BENCHMARKS.md. Run from a folder holding dist/ and scripts/ with
# node_modules resolvable (the coordinator's checkout, or .device's tree):
#   source .device/prelude.sh && bash scripts/nan-h200.sh        (results under $OUT; ~3 minutes)
# LENGTHS (default 16K,64K) and VERSIONS pick the timed cases.
set -uo pipefail
out="${OUT:-nan-h200-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
# The flash versions' NaN test runs every version this device supports (tc2, sgmat-v1 on the H200).
timeout 150 node --test --test-concurrency=1 --test-name-pattern='NaN' dist/test/kernel-versions.test.js \
  > "$out/kernel-versions-nan.txt" 2>&1
echo "kernel-versions NaN: $(grep -c '^ok' "$out/kernel-versions-nan.txt") ok, $(grep -c '^not ok' "$out/kernel-versions-nan.txt") not ok" >&2
timeout 150 node --test --test-concurrency=1 dist/test/nan-kernels.test.js dist/test/nan-policy.test.js \
  > "$out/nan-tests.txt" 2>&1
echo "nan tests: $(grep -E '^# (pass|fail)' "$out/nan-tests.txt" | tr '\n' ' ')" >&2
timeout 150 node dist/src/cli/main.js bench kernels --families flash --lengths "${LENGTHS:-16K,64K}" --seconds 0.2 \
  --versions "${VERSIONS:-tc2-128x32,tc2-64x32,sgmat-v1}" --out-dir "$out" > "$out/bench.out" 2>&1
echo "bench: $(tail -n 3 "$out/bench.out" | tr '\n' ' ')" >&2
