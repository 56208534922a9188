#!/usr/bin/env bash
# Issue 17's training speed on the H200, CPU against WebGPU, in one call (~6.5 minutes at most at the defaults):
#  1. the indexer loss + gradient of one sequence alone, the target p from the layer's q and k included
#     (scripts/indexer-grad-timing.ts --target attention: what a step does per layer besides the frozen model),
#     at LENGTHS (CPU only up to CPU_MAX: it is O(L^2) in float64 JavaScript);
#  2. `longctx train-indexer` on passkey-2k at CONTEXT with each backend: CPU_STEPS steps on the CPU (~90 s a
#     step at 2K), GPU_STEPS on WebGPU (the frozen model, the target, the projections and the O(L^2) part all on
#     the GPU since the host-side work was removed): steps/s and tokens/s of the whole step; the WebGPU run under
#     node --cpu-prof, summarised into prof-summary.txt (the host's JS self time against idle = GPU waiting).
# Run from a folder holding dist/, scripts/, data/ and test/fixtures with node_modules resolvable:
#   source .device/prelude.sh && bash scripts/train-indexer-h200.sh       (results under $OUT)
# Dry run here: LENGTHS=128,256 CPU_MAX=256 CONTEXT=128 CPU_STEPS=1 GPU_STEPS=2 MODEL=test/fixtures/stories260K/stories260K.gguf
set -uo pipefail
out="${OUT:-train-indexer-h200-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
model="${MODEL:-test/fixtures/passkey-2k}"
context="${CONTEXT:-2048}"
ext=gguf
[ -d "$model" ] && ext=safetensors
timeout 150 node dist/scripts/indexer-grad-timing.js --lengths "${LENGTHS:-512,2048,8192,32768}" \
  --cpu-max "${CPU_MAX:-2048}" --heads "${HEADS:-4}" --dim "${DIM:-64}" --topk 256 --target attention \
  > "$out/grad-timing.md" 2> "$out/grad-timing.err"
cat "$out/grad-timing.md" "$out/grad-timing.err"
for backend in cpu webgpu; do
  if [ "$backend" = cpu ]; then steps="${CPU_STEPS:-1}"; limit=130; prof=(); else
    steps="${GPU_STEPS:-20}"; limit=120; prof=(--cpu-prof --cpu-prof-dir="$out/prof"); fi
  timeout "$limit" node "${prof[@]}" dist/src/cli/main.js train-indexer --model "$model" --data data/kjv-head.txt \
    --steps "$steps" --context "$context" --topk 256 --heads "${HEADS:-4}" --head-dim "${DIM:-64}" \
    --eval-samples 0 --out "$out/indexer-$backend.$ext" --backend "$backend" > "$out/train-$backend.out" 2>&1
  rc=$?
  last=$(grep '^step ' "$out/train-$backend.out" | tail -n 1)
  secs=$(echo "$last" | sed -E 's/.* ([0-9.]+) s$/\1/')
  done=$(echo "$last" | sed -E 's/^step ([0-9]+)\/.*/\1/')
  if [ -n "$last" ]; then
    echo "train-indexer --backend $backend (rc $rc): $done steps at context $context in $secs s:" \
      "$(awk -v n="$done" -v s="$secs" 'BEGIN { printf "%.3f steps/s", n / s }'), $(echo "$last" | grep -oE '[0-9]+ tokens/s')"
  else
    echo "train-indexer --backend $backend (rc $rc): no step finished; see $out/train-$backend.out"
  fi
done | tee "$out/summary.txt"
[ -d "$out/prof" ] && node dist/scripts/cpu-profile-summary.js "$out/prof" --top 20 > "$out/prof-summary.txt" 2>&1 \
  && rm -rf "$out/prof" && cat "$out/prof-summary.txt"
rm -f "$out"/indexer-*."$ext" "$out"/indexer-*.ckpt.safetensors
