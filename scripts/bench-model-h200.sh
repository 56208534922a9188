#!/usr/bin/env bash
# The model on the H200 in one device call (issue 11's measurement): a random-weight model of
# Llama-3.2-1B's shape, f16 storage, contexts 4K, 32K and 128K, six attention methods, 128 decoded tokens
# after each prefill, beside transformers (SDPA, f16) in the same call. Results under $OUT/model-h200/
# (model.json, model.md, SVG plots, torch.json, run.log). Within 9 minutes: transformers gets 150 s, then
# `longctx bench model` runs on what is left, skipping a context that the previous one predicts will not fit.
#   source .device/prelude.sh && bash scripts/bench-model-h200.sh      (carry .device; dist/ built)
# A dry run on lavapipe at a tiny size (no GPU, no torch: those steps fail fast and are skipped):
#   CONTEXTS=1K DECODE=8 TOTAL_SECONDS=300 SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64" \
#     bash scripts/bench-model-h200.sh
set -uo pipefail
out="${OUT:-bench-out}/model-h200"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
start=$(date +%s)
total=${TOTAL_SECONDS:-520}
contexts=${CONTEXTS:-4K,32K,128K}
decode=${DECODE:-128}
read -r -a shape <<<"${SHAPE_ARGS:-}"
# DECODE_KERNEL=decode-v3 (say) gives flash and window that split-KV decoding kernel instead of the default.
dk=${DECODE_KERNEL:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
timeout 150 python3 scripts/bench_model_torch.py --out "$out/torch.json" --lengths 4096,32768,131072 --decode 128 2>&1 |
  tail -n 8 | tee "$out/torch.log"
left=$((total - ($(date +%s) - start) - 15))
reference=()
[ -s "$out/torch.json" ] && reference=(--reference "$out/torch.json")
timeout "$((left + 10))" node dist/src/cli/main.js bench model --backend webgpu --storage f16 --contexts "$contexts" \
  "${shape[@]}" --decode "$decode" --chunk 512 --budget-seconds "$left" --out-dir "$out" "${reference[@]}" \
  --method "flash${dk:+:decode=$dk}" --method "window:left=1024${dk:+,decode=$dk}" --method hybrid:every=3,window=128 \
  --method cca:group=16,window=1024 --method dsa:topk=2048 --method star:block=8192 2>&1 | grep -v -e "artificially reduced" -e "deprecated" |
  tee "$out/run.log" | tail -n 40
# What a decoded token cost the host and the device, and layer 0's plan (cca and dsa say "resident").
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).rows;
for (const x of r) console.log([x.method, x.context, x.status, "reads/token", x.hostReadsPerToken, "submits/token", x.submitsPerToken, "writes/token", x.writesPerToken,
  "allocations/token",
  (x.buffersPerToken ?? 0) + (x.uniformsPerToken ?? 0) + (x.bindGroupsPerToken ?? 0), "|", (x.plans ?? [""])[0].slice(0, 90)].join(" "))' \
  "$out/model.json" | tee "$out/resident.txt"
echo "bench-model-h200: $(($(date +%s) - start)) s; results in $out"
