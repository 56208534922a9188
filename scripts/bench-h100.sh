#!/usr/bin/env bash
# The attention benchmark sweep on the GPU machine, PyTorch's rows first, in one device call:
#   run: source .device/prelude.sh && bash scripts/bench-h100.sh   (carry .device; results under $OUT)
set -uo pipefail
out="${OUT:-bench-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 scripts/torch_sdpa_bench.py --out "$out/torch.json" ${TORCH_ARGS:-} 2>&1 | tail -n 40
node dist/src/cli/main.js bench attention --backend webgpu --reference "$out/torch.json" --out-dir "$out" \
  --title "Causal attention forward, 32 heads, head dim 128" ${BENCH_ARGS:-} 2>&1 | grep -v "artificially reduced"
