#!/usr/bin/env bash
# Issue 18's saved sessions on the H200 in one call: time to first token of a question about a 128K-token
# document from a saved session against prefilling it again, flash and CCA, on the random Llama-3.2-1B-shaped
# model in f16 on WebGPU (its f16 cache at 128K is 4 GiB: the file streams past one typed array's limit).
# Run from a folder holding dist/ and scripts/ with node_modules resolvable:
#   source .device/prelude.sh && bash scripts/session-h200.sh        (results under $OUT/session/)
# SHAPE (1b), CONTEXT (128K) and SESSION_SECONDS (240) pick the run. Dry run on lavapipe:
#   OUT=/tmp/dry-session SHAPE=tiny CONTEXT=1K bash scripts/session-h200.sh
set -uo pipefail
out="${OUT:-session-h200-out}/session"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
timeout "${SESSION_SECONDS:-240}" node dist/src/cli/session-bench.js --random "${SHAPE:-1b}" --backend webgpu \
  --storage f16 --context "${CONTEXT:-128K}" --attention flash --attention cca:group=16,window=1024 \
  --json "$out/session.json" > "$out/session.md" 2> "$out/session.err"
rc=$?
cat "$out/session.md" "$out/session.err" >&2
echo "session-bench exit $rc" >&2
exit "$rc"
