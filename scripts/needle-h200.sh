#!/usr/bin/env bash
# The DSA indexer and CCA's cores as retrieval of passkey-2k's asked pass key at 8K-128K (docs/DSA-MASS.md, the
# needle section), exact attention prefilled on WebGPU (the H200), in one call of at most ~9 minutes:
#   source .device/prelude.sh && bash scripts/needle-h200.sh [PASSKEY_2K_DIR]      (results under $OUT)
# One `longctx eval-mass --needle passkey` per context, so a context that runs out of time loses only itself
# (the JSON and markdown are written when a context finishes). YaRN factor 16, as the CPU table here.
# CONTEXTS (default 8K 16K 32K 64K 128K), CASES ("20 20 12 8 4", one per context), SECONDS_PER ("90 90 100 120
# 150"), SEED (default 1), BUDGETS (default 256,1024,2048) and CCA override; a dry run elsewhere:
#   CONTEXTS="1K 2K" CASES="2 2" SECONDS_PER="60 60" bash scripts/needle-h200.sh
set -uo pipefail
model="${1:-test/fixtures/passkey-2k}"
out="${OUT:-needle-out}"
read -r -a contexts <<< "${CONTEXTS:-8K 16K 32K 64K 128K}"
read -r -a cases <<< "${CASES:-20 20 12 8 4}"
read -r -a seconds <<< "${SECONDS_PER:-90 90 100 120 150}"
mkdir -p "$out"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
[ -e "$model" ] || { echo "no passkey-2k model at $model" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
start=$(date +%s)
for i in "${!contexts[@]}"; do
  c="${contexts[$i]}"
  timeout "${seconds[$i]:-120}" node dist/src/cli/main.js eval-mass --needle passkey --model "$model" --backend webgpu \
    --contexts "$c" --cases "${cases[$i]:-4}" --seed "${SEED:-1}" --budgets "${BUDGETS:-256,1024,2048}" \
    --cca "${CCA_A:-group=16,window=1024}" --cca "${CCA_B:-group=64,window=1024}" \
    --rope yarn:factor=16,original=2048 --out "$out/needle-$c.json" > /dev/null 2> "$out/needle-$c.log"
  echo "$c: exit $? after $(( $(date +%s) - start )) s" >> "$out/needle.log"
done
cat "$out/needle.log"
