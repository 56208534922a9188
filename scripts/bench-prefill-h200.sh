#!/usr/bin/env bash
# Issue 12's model-prefill measurement in one device call (H200): the random-weight Llama-3.2-1B-shaped
# model in f16 on WebGPU, a 16K-token prefill with the planner's matmuls (tensor cores for the chunks,
# the GEMV for one row; each row's "Matmul kernels that ran" lines name them), at the device's default prefill
# chunk (no --chunk) and at 512 and 2048, beside transformers (SDPA, f16) at 16K in the same call. Target: >= 25,000 tokens/s.
# Results under $OUT/prefill-h200/ (chunk-N/model.{json,md}, torch.json, logs). About 4 minutes.
#   source .device/prelude.sh && bash scripts/bench-prefill-h200.sh      (carry .device; dist/ built)
# Dry run on lavapipe: CONTEXT=1K CHUNKS="128 256" BENCH_ARGS="--shape tiny" bash scripts/bench-prefill-h200.sh
set -uo pipefail
out="${OUT:-bench-out}/prefill-h200"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
start=$(date +%s)
context=${CONTEXT:-16K}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
tokens=$(node -e "const s='$context';console.log(/K$/i.test(s)?parseInt(s)*1024:parseInt(s))")
timeout 120 python3 scripts/bench_model_torch.py --out "$out/torch.json" --lengths "$tokens" --decode 16 2>&1 |
  tail -n 5 > "$out/torch.log"
echo "transformers: $(tail -n 1 "$out/torch.log")"
reference=()
[ -s "$out/torch.json" ] && reference=(--reference "$out/torch.json")
# DISTS: builds to compare in the same call (e.g. "dist dist-c", a second build with other kernel defaults).
for dist in ${DISTS:-dist}; do
  tag=""; [ "$dist" = dist ] || tag="$dist-"
  for chunk in ${CHUNKS:-default 512 2048}; do
    # "default": no --chunk, the chunk a user's run takes on this device (the planner's defaultPrefillChunk).
    chunkArgs=(--chunk "$chunk"); [ "$chunk" = default ] && chunkArgs=()
    timeout 170 node "$dist/src/cli/main.js" bench model --backend webgpu --storage f16 --contexts "$context" \
      --decode 16 "${chunkArgs[@]}" --method flash --budget-seconds 150 --out-dir "$out/${tag}chunk-$chunk" \
      ${BENCH_ARGS:-} "${reference[@]}" 2>&1 | grep -v -e "artificially reduced" -e "deprecated" > "$out/${tag}chunk-$chunk.log"
    grep -e "^| longctx" -e "^| transformers" -e "^- matmul" -e "prefill chunk" "$out/${tag}chunk-$chunk.log" | sed "s/^/$tag chunk $chunk: /" |
      cut -c1-400
  done
done
echo "bench-prefill-h200: $(($(date +%s) - start)) s; results in $out"
