#!/usr/bin/env bash
# One device call that checks the tensor-core paths on the H200 and looks for where decoding time goes:
# 1. the WebGPU tests whose kernels only run on a GPU with subgroup matrices (tc2 in the model's flash layers,
#    the tensor-core matmuls, the kernel versions against their reference, NaN policy);
# 2. decoding of the Llama-3.2-1B-shaped model at 4K under flash, window and DSA with a V8 CPU profile per
#    run, summarised (host-bound or waiting on the GPU; which functions);
# Results under $OUT/probe-h200/ (tests.log, decode.log, profile.txt).
#   source .device/prelude.sh && bash scripts/probe-h200.sh      (carry .device; dist/ built)
set -uo pipefail
out="${OUT:-bench-out}/probe-h200"
mkdir -p "$out"
start=$(date +%s)
quiet() { grep -v -e "artificially reduced" -e "deprecated"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
timeout 200 node --test --test-concurrency=1 ${TESTS:-dist/test/model-gpu-tiles.test.js dist/test/decoder-matmul.test.js \
  dist/test/kernel-versions.test.js dist/test/nan-kernels.test.js} 2>&1 | quiet > "$out/tests.log"
grep -e "^# pass" -e "^# fail" -e "^not ok" -e "^    not ok" "$out/tests.log"
methods=()
for m in ${METHODS:-flash window:left=1024 window:left=1024,variant=portable dsa:topk=2048}; do methods+=(--method "$m"); done
timeout 200 node --cpu-prof --cpu-prof-dir "$out/prof" dist/src/cli/main.js bench model --backend webgpu --storage f16 \
  --contexts "${CONTEXT:-4K}" ${SHAPE_ARGS:-} --decode "${DECODE:-48}" --chunk 512 --budget-seconds 180 \
  --out-dir "$out/decode" "${methods[@]}" 2>&1 | quiet > "$out/decode.log"
grep -e "^| longctx" -e "prefill flash\|decode flash" "$out/decode.log" | cut -c1-300
node dist/scripts/cpu-profile-summary.js "$out/prof" --top 30 > "$out/profile.txt" 2>&1
rm -rf "$out/prof"
echo "probe-h200: $(($(date +%s) - start)) s"
