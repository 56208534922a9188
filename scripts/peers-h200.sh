#!/usr/bin/env bash
# longctx beside onnxruntime-web (the engine under transformers.js in a browser) on the H200 in one device call
# (issue 20), both in this Node process on the same Dawn: `longctx bench peers` (src/bench/peers/).
# 1. agreement, exact: passkey-2k as an f32 ONNX graph on onnxruntime-web's wasm EP vs longctx WebGPU f32, the first
#    16 greedy tokens of three 1K-token prompts (and the logit gap where they part);
# 2. agreement, f16: the same with the WebGPU EP and longctx f16 (each under its own timeout: a hang stops only it;
#    if the native WebGPU EP does not finish, ONNX Runtime's JSEP build is tried and, if it runs, swept);
# 3. speed: the random Llama-3.2-1B-shaped model (same weights in both), f16, contexts 1K..128K until each engine
#    fails or the budget ends: prefill tok/s, decode tok/s over 128 tokens, peak GPU memory, how a run failed.
# Results under $OUT/peers-h200/ (agree-*/peers.{json,md}, speed/peers.{json,md}, speed/peers-*.svg, *.log).
#   bash scripts/pack-device.sh --with-ort   then   source .device/prelude.sh && bash scripts/peers-h200.sh
# AGREE=0 skips parts 1 and 2 (recorded already: docs/bench/peers-h200/), for a call that only sweeps long contexts.
# Dry run on the CPU: BACKEND=cpu PEER=wasm STORAGE=f32 SHAPE=tiny CONTEXTS=256,512 DECODE=8 AGREE_TOKENS=256 \
#   TOTAL_SECONDS=200 bash scripts/peers-h200.sh
set -uo pipefail
out="${OUT:-bench-out}/peers-h200"
mkdir -p "$out"
start=$(date +%s)
total=${TOTAL_SECONDS:-470}
backend=${BACKEND:-webgpu}
peer=${PEER:-webgpu}
storage=${STORAGE:-f16}
cases=test/fixtures/passkey-2k/cases-2k.jsonl
quiet() { grep -v -e "artificially reduced" -e "deprecated"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"
agree() { # name, timeout, longctx backend, storage, peer EP
  timeout "$2" node dist/src/cli/main.js bench peers --agree-only --backend "$3" --storage "$4" --peer "$5" \
    --agree-model test/fixtures/passkey-2k --agree-cases "$cases" --agree-tokens "${AGREE_TOKENS:-1024}" \
    --agree-steps 16 --out-dir "$out/agree-$1" 2>&1 | quiet | tee "$out/agree-$1.log" | tail -n 5
  echo "agree-$1: exit ${PIPESTATUS[0]}" | tee -a "$out/agree-$1.log"
}
[ "${AGREE:-1}" = 1 ] && agree exact 80 "$backend" f32 wasm
if [ "${AGREE:-1}" = 1 ] && [ "$peer" = webgpu ]; then
  agree webgpu 75 "$backend" "$storage" webgpu
  # The native WebGPU EP did not finish: try ONNX Runtime's JS-kernel WebGPU EP (JSEP), and sweep with it if it runs.
  if ! grep -q "agreement at" "$out/agree-webgpu.log"; then
    LONGCTX_ORT_JSEP=1 agree webgpu-jsep 60 "$backend" "$storage" webgpu
    grep -q "agreement at" "$out/agree-webgpu-jsep.log" && export LONGCTX_ORT_JSEP=1
  fi
fi
left=$((total - ($(date +%s) - start) - 20))
timeout "$((left + 15))" node dist/src/cli/main.js bench peers --backend "$backend" --storage "$storage" --peer "$peer" \
  --shape "${SHAPE:-llama-3.2-1b}" --contexts "${CONTEXTS:-1K,4K,16K,32K,64K,128K}" --decode "${DECODE:-128}" \
  --budget-seconds "$left" --out-dir "$out/speed" 2>&1 | quiet | tee "$out/speed.log" | tail -n 20
echo "speed: exit ${PIPESTATUS[0]}" | tee -a "$out/speed.log"
echo "peers-h200: $(($(date +%s) - start)) s; results in $out"
