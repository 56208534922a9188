#!/usr/bin/env bash
# DeepSeek Sparse Attention on the GPU machine (`longctx bench dsa`), in one device call
# (after `source .device/prelude.sh`; dist/ built):
#   bash scripts/bench-dsa-h100.sh       -> $OUT/dsa/{dsa.json,dsa.md,int8.log,float.log}
# Prefill and decode from 8K to 128K, indexer / selection / attention apart, against our flash prefill and
# dense decoding (flash with one query). 32 heads (8 KV), head dim 128, f16; indexer 4 x 64, topk 2048.
# The int8 sweep also times the previous kernels (--compare-old: tiles sparse attention, selection without
# subgroup-aggregated atomics), so dsa.md shows old -> new from one run. The float-indexer sweep runs only if
# time is left. Kept under 4 minutes (DSA_SECONDS).
set -uo pipefail
out="${OUT:-bench-out}/dsa"
mkdir -p "$out"
deadline=$(( $(date +%s) + ${DSA_SECONDS:-230} ))
left() { echo $(( deadline - $(date +%s) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>/dev/null || true
timeout "$(left)" node dist/src/cli/main.js bench dsa --out-dir "$out" --lengths "${DSA_LENGTHS:-8K,16K,32K,64K,128K}" \
  --budget-seconds 20 --compare-old ${DSA_ARGS:-} 2>&1 | grep -v "artificially reduced" | tee "$out/int8.log"
if [ "$(left)" -gt 60 ]; then
  timeout "$(left)" node dist/src/cli/main.js bench dsa --out-dir "$out/float" --precision float --lengths "${DSA_FLOAT_LENGTHS:-32K,128K}" \
    --budget-seconds 5 --reps 3 ${DSA_ARGS:-} 2>&1 | grep -v "artificially reduced" | tee "$out/float.log"
fi
