#!/usr/bin/env bash
# Model runner speed on the GPU machine: prefill and decode tokens/s against context length for a
# random-weight model of Llama-3.2-1B's shape, per attention method, beside transformers (SDPA, f16).
#   source .device/prelude.sh && bash scripts/bench-model-h100.sh     (results under $OUT/model/)
# Under 4 minutes: each method stops growing its context once one run exceeds the budget.
set -uo pipefail
out="${OUT:-bench-out}/model"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + ${SWEEP_SECONDS:-220} ))
left() { echo $(( deadline - $(date +%s) )); }
lengths="${LENGTHS:-1024,4096,16384}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
timeout 90 python3 scripts/bench_model_torch.py --out "$out/torch.json" --lengths "$lengths" 2>&1 | tail -n 8
# f16 storage (weights, Q, KV) for every method, as one would serve; then flash in f32 (the exact path).

timeout "$(left)" node dist/src/cli/main.js bench model --backend webgpu --contexts "$lengths" --decode 32 --storage f16 \
  --budget-seconds "$(( $(left) / 2 ))" --method flash --method window:left=1024 --method hybrid:every=3,window=128 \
  --method dense ${MODEL_ARGS:-} --out-dir "$out/f16" 2>&1 | grep -v "artificially reduced" | tail -n 20
timeout "$(left)" node dist/src/cli/main.js bench model --backend webgpu --contexts "$lengths" --decode 32 --storage f32 \
  --budget-seconds "$(( $(left) - 10 ))" --method flash ${MODEL_ARGS:-} --out-dir "$out/f32" 2>&1 |
  grep -v "artificially reduced" | tail -n 20
