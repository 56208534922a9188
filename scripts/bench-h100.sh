#!/usr/bin/env bash
# The benchmark sweeps on the GPU machine, in one device call (PyTorch's rows first, as the reference):
#   source .device/prelude.sh && bash scripts/bench-h100.sh      (carry .device; results under $OUT)
# 1. exact attention: dense, flash (auto = subgroup-matrix on the H100) and flash portable, beside
#    PyTorch SDPA's flash and math backends; 2. sparse: windows and the hybrid schedule against flash.
# Everything lands in $OUT/results.tar.gz (the device tool returns at most 8 files).
set -uo pipefail
out="${OUT:-bench-out}"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1
# Whatever finished lands in the archive, even when a sweep is cut short by the time limit.
trap 'tar -C "$work" -czf "$out/results.tar.gz" .' EXIT
deadline=$(( $(date +%s) + ${SWEEP_SECONDS:-540} ))
left() { echo $(( deadline - $(date +%s) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$work/gpu.txt"
bench() { timeout "$(left)" node dist/src/cli/main.js bench attention --backend webgpu "$@" 2>&1 | grep -v "artificially reduced"; }
if [ -z "${SKIP_EXACT:-}" ]; then
  python3 scripts/torch_sdpa_bench.py --out "$work/torch.json" 2>&1 | tail -n 20
  bench --reference "$work/torch.json" --out-dir "$work/exact" --title "Causal attention forward, 32 heads, head dim 128" \
    --method dense --method flash --method flash:variant=portable --budget-seconds 12 ${EXACT_ARGS:-}
fi
if [ -z "${SKIP_SPARSE:-}" ]; then
  bench --out-dir "$work/sparse" --title "Sparse attention forward, causal, 32 heads, head dim 128" --lengths 4K,8K,16K,32K,64K,128K \
    --method flash --method window:left=128 --method window:left=1024 --method window:left=4096 \
    --method hybrid:every=3,window=128 --budget-seconds 30 ${SPARSE_ARGS:-}
fi
