#!/usr/bin/env bash
# Issue 14's device check in one call (H200), under 4 minutes: the NaN policy where lavapipe cannot run it
# natively (the subgroup-matrix flash v1, tc2 and CCA kernels: test/nan-tc.test.ts runs them on the real
# subgroup matrices and, beside them, through the emulation CI uses, and compares the two), every kernel
# version against float64 (test/kernel-versions.test.ts, with its masked-v case), and the flash speed with the
# V-tile flag, to hold beside the tc2 / sgmat-v1 rows of docs/BENCHMARKS.md (measured without the flag). Run
# from a folder holding dist/ and scripts/ with node_modules resolvable (the coordinator's checkout, or
# .device's tree):
#   source .device/prelude.sh && bash scripts/nan-h200.sh        (results under $OUT)
# LENGTHS (default 16K,64K: D 128 at each, D 64/80/32 at the first), VERSIONS and SECONDS_PER pick the timed
# cases. Dry run on lavapipe: LENGTHS=256 SECONDS_PER=0.01 VERSIONS=portable bash scripts/nan-h200.sh
set -uo pipefail
out="${OUT:-nan-h200-out}"
mkdir -p "$out"
deadline=$(( $(date +%s) + ${TOTAL_SECONDS:-230} ))
left() { echo $(( deadline - $(date +%s) )); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$(( l > 1 ? l : 1 ))"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
summary() { # pass / fail / skip counts of a node --test run
  echo "$(grep -E '^# (pass|fail|skipped) ' "$1" | sed 's/^# //' | tr '\n' ' ')"
}
timeout "$(cap 90)" node --test --test-concurrency=1 dist/test/nan-tc.test.js > "$out/nan-tc.txt" 2>&1
echo "nan-tc (native + emulated): $(summary "$out/nan-tc.txt"), native tests: $(grep -c '^    ok .* - native' "$out/nan-tc.txt") ok" >&2
timeout "$(cap 60)" node dist/src/cli/main.js bench kernels --families flash --lengths "${LENGTHS:-16K,64K}" \
  --seconds "${SECONDS_PER:-0.2}" --versions "${VERSIONS:-tc2-128x32,tc2-64x32,sgmat-v1}" --out-dir "$out" \
  > "$out/bench.out" 2>&1
echo "bench (TFLOP/s rows in $out/bench.out):" >&2
grep -E 'tc2|sgmat' "$out/bench.out" | tail -n 12 >&2
timeout "$(cap 60)" node --test --test-concurrency=1 dist/test/kernel-versions.test.js \
  > "$out/kernel-versions.txt" 2>&1
echo "kernel-versions: $(summary "$out/kernel-versions.txt")" >&2
timeout "$(cap 20)" node --test --test-concurrency=1 dist/test/nan-kernels.test.js > "$out/nan-kernels.txt" 2>&1
echo "nan-kernels: $(summary "$out/nan-kernels.txt")" >&2
grep -hE '^(not ok|    not ok|        not ok)' "$out"/*.txt | head -n 20 >&2
echo "done, $(left) s of the 230 left" >&2
