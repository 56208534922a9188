#!/usr/bin/env bash
# Attention mass captured by the training-free DSA indexer at 32K-128K, in one device call (after
# `source .device/prelude.sh`; dist/ built):   bash scripts/dsa-mass-h100.sh  -> $OUT/dsa-mass/{mass.md,mass.json,log}
# stories260K (trained at 512 tokens) prefills data/kjv-head.txt with exact flash attention on WebGPU; every
# layer's q, k come back to the host, which scores 128 sampled queries per context against the selectors
# (`longctx eval-mass`, src/eval/dsa-mass.ts). Kept under 4 minutes (MASS_SECONDS); the host part is most of it, and
# mass.md is rewritten after each context, so a run cut by the limit still reports the shorter contexts.
set -uo pipefail
out="${OUT:-bench-out}/dsa-mass"
mkdir -p "$out"
timeout "${MASS_SECONDS:-225}" node dist/src/cli/main.js eval-mass --backend "${MASS_BACKEND:-webgpu}" \
  --contexts "${MASS_CONTEXTS:-32768,65536,131072}" --samples "${MASS_SAMPLES:-128}" --budgets "${MASS_BUDGETS:-512,2048}" \
  --chunk "${MASS_CHUNK:-4096}" --out "$out/mass.json" 2>&1 | grep -v "artificially reduced" > "$out/log"
echo "exit ${PIPESTATUS[0]}" >> "$out/log"
cat "$out/mass.md" 2>/dev/null; cat "$out/log"
