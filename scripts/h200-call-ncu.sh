#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 560, prelude included) for issue 12's open questions:
#  1. whether Nsight Compute reads Dawn's Vulkan pipelines: `ncu --version`, its options about graphics APIs, then
#     ncu over a short `bench kernels` run of one matmul version: $OUT/ncu/ (what it printed, and its report if it
#     profiled anything), within 100 s;
#  2. the tensor-core tests on the GPU with room to finish (kernel versions, decoder matmul, plan, NaN policy on
#     the tc kernels): $OUT/test.txt, within TEST_SECONDS (240);
#  3. PyTorch's rows, then `bench kernels --families matmul` twice in one process each: the 4096 x 2048 x 8192
#     rows with f16 x ran 3-5x slow in the 2026-12-04 call (after a stopped test process): $OUT/matmul-{1,2}/.
#   bash scripts/pack-device.sh      then      source .device/prelude.sh && bash scripts/h200-call-ncu.sh
# Dry run on lavapipe (no ncu there: part 1 says so): OUT=/tmp/dry-ncu KERNEL_ARGS=--small bash scripts/h200-call-ncu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/ncu" "$out/matmul-1" "$out/matmul-2"
call_deadline "${CALL_SECONDS:-560}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
read -r -a kernelArgs <<< "${KERNEL_ARGS:-}"
matmul() { # out dir, tag, extra args...
  local dir=$1 tag=$2
  shift 2
  node dist/src/cli/main.js bench kernels --families matmul --out-dir "$dir" --tag "$tag" "${kernelArgs[@]}" "$@"
}

# 1. Nsight Compute.
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2> /dev/null | head -n 1)
if [ -n "$ncu_bin" ]; then
  {
    echo "ncu: $ncu_bin"
    "$ncu_bin" --version
    echo "== options about graphics APIs, ranges and replay:"
    "$ncu_bin" --help | grep -i -E -A2 "graphic|vulkan|range|replay-mode" | head -n 60
  } > "$out/ncu/version.txt" 2>&1
  within "$(window 100)" "$ncu_bin" --clock-control none --target-processes all --launch-count 3 \
    --export "$out/ncu/matmul" bash -c 'node dist/src/cli/main.js bench kernels --families matmul \
      --versions tc-256x128x32-s-c --seconds 0.05 --out-dir '"$out/ncu/run"' --tag ncu '"${KERNEL_ARGS:-}" \
    > "$out/ncu/ncu.txt" 2>&1
  stamp ncu $?
  [ -f "$out/ncu/matmul.ncu-rep" ] && "$ncu_bin" --import "$out/ncu/matmul.ncu-rep" --page details \
    > "$out/ncu/details.txt" 2>&1
else
  echo "no ncu on this machine" > "$out/ncu/version.txt"
  stamp ncu 127
fi

# 2. The tests.
within "$(window "${TEST_SECONDS:-240}")" node --test --test-concurrency=1 dist/test/kernel-versions.test.js \
  dist/test/decoder-matmul.test.js dist/test/plan.test.js dist/test/nan-tc.test.js > "$out/test.txt" 2>&1
stamp test $?

# 3. The matmul rows, twice.
within "$(window 60)" python3 scripts/torch_kernels_bench.py --lengths 16384 --out "$out/matmul-1/torch.json" \
  > "$out/matmul-1/torch.log" 2>&1
ref=(); [ -s "$out/matmul-1/torch.json" ] && ref=(--reference "$out/matmul-1/torch.json")
within "$(window 80)" matmul "$out/matmul-1" run1 "${ref[@]}" > "$out/matmul-1/bench.out" 2>&1
stamp matmul-1 $?
within "$(window 80)" matmul "$out/matmul-2" run2 "${ref[@]}" > "$out/matmul-2/bench.out" 2>&1
stamp matmul-2 $?
{
  cat "$out/gpu.txt"
  echo "== ncu: $(cat "$out/ncu-exit.txt")"
  cat "$out/ncu/version.txt"
  grep -v -e "artificially reduced" -e deprecated "$out/ncu/ncu.txt" 2> /dev/null | tail -n 25
  head -n 60 "$out/ncu/details.txt" 2> /dev/null
  echo "== test: $(cat "$out/test-exit.txt"); $(grep -c '^ok' "$out/test.txt") ok, $(grep -c '^not ok' "$out/test.txt") not ok"
  grep -E "^not ok|^# (pass|fail|skip)" "$out/test.txt" | head -n 8
  for r in 1 2; do
    echo "== matmul-$r: $(cat "$out/matmul-$r-exit.txt")"
    grep -E "^\| matmul \| M4096" "$out/matmul-$r/kernels-run$r.md" 2> /dev/null | cut -c1-150
  done
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
