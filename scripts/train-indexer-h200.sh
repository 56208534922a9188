#!/usr/bin/env bash
# Issue 17's training speed on the H200, CPU against WebGPU, in one call (~6 minutes at the defaults):
#  1. the indexer loss + gradient of one sequence alone (scripts/indexer-grad-timing.ts: the part that
#     --backend moves to the GPU), at LENGTHS (CPU only up to CPU_MAX: it is O(L^2) in float64 JavaScript);
#  2. `longctx train-indexer` on passkey-2k for STEPS steps at CONTEXT with each backend: steps/s and tokens/s
#     of the whole step (the frozen model and the target p stay on the CPU in both, so this speedup is smaller).
# Run from a folder holding dist/, scripts/, data/ and test/fixtures with node_modules resolvable:
#   source .device/prelude.sh && bash scripts/train-indexer-h200.sh       (results under $OUT)
# Dry run here: LENGTHS=128,256 CPU_MAX=256 CONTEXT=128 STEPS=2 MODEL=test/fixtures/stories260K/stories260K.gguf
set -uo pipefail
out="${OUT:-train-indexer-h200-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
model="${MODEL:-test/fixtures/passkey-2k}"
steps="${STEPS:-3}"
context="${CONTEXT:-2048}"
ext=gguf
[ -d "$model" ] && ext=safetensors
timeout 200 node dist/scripts/indexer-grad-timing.js --lengths "${LENGTHS:-512,2048,8192}" \
  --cpu-max "${CPU_MAX:-2048}" --heads "${HEADS:-4}" --dim "${DIM:-64}" --topk 256 \
  > "$out/grad-timing.md" 2> "$out/grad-timing.err"
cat "$out/grad-timing.md"
for backend in cpu webgpu; do
  timeout 160 node dist/src/cli/main.js train-indexer --model "$model" --data data/kjv-head.txt \
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
rm -f "$out"/indexer-*."$ext" "$out"/indexer-*.ckpt.safetensors
