#!/usr/bin/env bash
# passkey-2k past its trained 2K context with remapped top-k positions on WebGPU (the H200), one call:
#   source .device/prelude.sh && bash scripts/eval-remap-h200.sh [PASSKEY_2K_DIR]      (results under $OUT)
# 1. dev split (seed 1): each of DEV_CONFIGS (remap settings, exact attention beside them) at DEV_LENGTHS,
#    DEV_CASES cases each, within DEV_SECONDS; the configuration with the most correct dev cases (the first on
#    a tie) is chosen, and the choice is written to $OUT/chosen.txt;
# 2. test split (seed 2): the chosen configuration, unchanged, single-key passkey round robin over LENGTHS
#    (default 4K-128K, up to CASES each) within TEST_SECONDS; then multi-key at 4K-16K in BESIDE_SECONDS.
# Each part starts no case after its share, a hard timeout stops a case in flight, and what finished is kept.
# Dry run here: DEV_LENGTHS=2K DEV_CASES=1 LENGTHS=2K,3K CASES=1 DEV_SECONDS=60 TEST_SECONDS=60 BESIDE_SECONDS=0 \
#   DEV_CONFIGS="remap:window=256,topk=256 remap:window=256,topk=768" OUT=/tmp/dry bash scripts/eval-remap-h200.sh
set -uo pipefail
model="${1:-test/fixtures/passkey-2k}"
out="${OUT:-eval-out}"
work=/tmp/longctx-eval-remap
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
[ -e "$model" ] || { echo "no passkey-2k model at $model" >&2; exit 2; }
read -r -a configs <<<"${DEV_CONFIGS:-remap:window=512,topk=512 remap:window=512,topk=1536}"
cli() {
  local seconds=$1 dir=$2 seed=$3
  shift 3
  timeout $(( seconds + 60 )) node dist/src/cli/main.js eval --model "$model" --seed "$seed" --backend webgpu \
    --storage "${STORAGE:-f16}" --budget-seconds "$seconds" --out "$work/$dir" "$@" 2>&1 | grep -v "artificially reduced" | tail -n 30
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
start=$(date +%s)
dev_args=()
for c in "${configs[@]}"; do dev_args+=(--positions "$c"); done
cli "${DEV_SECONDS:-80}" dev 1 --tasks passkey --lengths "${DEV_LENGTHS:-16K,64K}" --cases-per "${DEV_CASES:-8}" \
  "${dev_args[@]}" --title "remap dev" > "$out/dev.log"
chosen=$(node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const configs = process.argv.slice(2);
const right = (c) => lines.filter((x) => x.positions === c && x.correct).length;
const seen = (c) => lines.filter((x) => x.positions === c).length;
let best = configs[0];
for (const c of configs) if (right(c) > right(best)) best = c;
for (const c of configs) console.error(`dev: ${c}: ${right(c)} of ${seen(c)} correct`);
console.log(best);' "$work/dev/results.jsonl" "${configs[@]}" 2>> "$out/dev.log")
chosen="${chosen:-${configs[0]}}"
echo "$chosen" > "$out/chosen.txt"
echo "chosen on the dev split: $chosen ($(( $(date +%s) - start )) s)" | tee -a "$out/dev.log"
cli "${TEST_SECONDS:-300}" test 2 --tasks passkey --lengths "${LENGTHS:-4K,8K,16K,32K,64K,128K}" \
  --cases-per "${CASES:-100}" --positions "$chosen" --title "passkey (WebGPU)" > "$out/test.log"
[ "${BESIDE_SECONDS:-30}" -gt 0 ] && cli "${BESIDE_SECONDS:-30}" test 2 --tasks multikey --lengths 4K,8K,16K \
  --cases-per 20 --positions "$chosen" --title "beside (WebGPU)" >> "$out/test.log"
echo "eval parts took $(( $(date +%s) - start )) s" >> "$out/test.log"
for split in dev test; do
  seed=1; [ "$split" = test ] && seed=2
  node dist/src/cli/main.js eval --model "$model" --seed "$seed" --backend cpu --cases-per 0 --out "$work/$split" \
    --title "passkey-2k past 2K on WebGPU, remapped top-k ($split split)" > /dev/null 2>&1
  mkdir -p "$out/$split"
  cp "$work/$split"/report.md "$work/$split"/report.json "$work/$split"/results.jsonl "$out/$split/" 2> /dev/null
  (cd "$work/$split" && tar -czf "$out/$split/plots.tar.gz" ./*.svg 2> /dev/null)
done
cat "$out/dev.log" "$out/test/report.md" 2> /dev/null | tail -n 60
