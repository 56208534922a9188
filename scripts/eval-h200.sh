#!/usr/bin/env bash
# passkey-2k past its trained 2K context under Self-Extend on WebGPU (the H200), in one call of about 8 minutes:
#   source .device/prelude.sh && bash scripts/eval-h200.sh [PASSKEY_2K_DIR]      (results under $OUT)
# - single-key passkey as train_passkey.py's sample() makes it, exact attention (flash) with Self-Extend
#   (POSITIONS, default window 512, group 128: every grouped distance stays inside 2K up to 197K tokens),
#   round robin over 4K-32K (up to 100 cases each), then over 64K-128K (up to 50: about a minute a case at 128K);
# - multi-key, variable tracking and bAbI qa1-qa2 at 4K-16K beside it, same configuration.
# Plain RoPE and YaRN were measured on 2026-12-01 (docs/EVAL.md, docs/eval-h200/); BASELINES=1 crosses the short
# part with YaRN (factor 16) and no positional method (4 configurations, a quarter of the cases each).
# SEED=1 is the dev split (choose a configuration), SEED=2 (default) the test split (report it unchanged).
# EVAL_SECONDS (default 360) is shared by the parts (45% short, 40% long, 15% beside); each part starts no case
# after its share and a hard timeout stops a case in flight; what finished is kept (results.jsonl) and reported.
# LENGTHS, LONG_LENGTHS, BESIDE_LENGTHS, CASES, LONG_CASES, BESIDE_CASES and POSITIONS override the grid (a dry
# run elsewhere: LENGTHS=1K LONG_LENGTHS=2K BESIDE_LENGTHS=1K CASES=2 ...).
set -uo pipefail
model="${1:-test/fixtures/passkey-2k}"
out="${OUT:-eval-out}"
seed="${SEED:-2}"
budget="${EVAL_SECONDS:-360}"
positions="${POSITIONS:-self-extend:window=512,group=128}"
work=/tmp/longctx-eval-h200
mkdir -p "$out" "$work"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
[ -e "$model" ] || { echo "no passkey-2k model at $model" >&2; exit 2; }
cli() {
  local seconds=$1
  shift
  # A case in flight when the share runs out may take a minute at 128K: the hard stop leaves it that.
  timeout $(( seconds + 90 )) node dist/src/cli/main.js eval --model "$model" --seed "$seed" --backend webgpu \
    --storage "${STORAGE:-f16}" \
    --budget-seconds "$seconds" --out "$work/gpu" "$@"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
baselines=()
[ "${BASELINES:-0}" = 1 ] && baselines=(--rope yarn:factor=16,original=2048 --positions none)
start=$(date +%s)
{
  cli $(( budget * 45 / 100 )) --tasks passkey --lengths "${LENGTHS:-4K,8K,16K,32K}" --cases-per "${CASES:-100}" \
    --rope model --positions "$positions" ${baselines[@]+"${baselines[@]}"} --title "passkey (WebGPU)"
  cli $(( budget * 40 / 100 )) --tasks passkey --lengths "${LONG_LENGTHS:-64K,128K}" --cases-per "${LONG_CASES:-50}" \
    --rope model --positions "$positions" --title "passkey (WebGPU)"
  cli $(( budget * 15 / 100 )) --tasks multikey,vt,qa1,qa2 --lengths "${BESIDE_LENGTHS:-4K,8K,16K}" \
    --cases-per "${BESIDE_CASES:-20}" --rope model --positions "$positions" --title "beside (WebGPU)"
} 2>&1 | grep -v "artificially reduced" | tail -n 60 > "$out/gpu.log"
echo "eval parts took $(( $(date +%s) - start )) s" >> "$out/gpu.log"
# One report over everything (a report-only run: --cases-per 0 over the same results).
node dist/src/cli/main.js eval --model "$model" --seed "$seed" --backend cpu --cases-per 0 --out "$work/gpu" \
  --title "passkey-2k past 2K on WebGPU with ${positions} (seed ${seed})" > /dev/null
cp "$work/gpu/report.md" "$work/gpu/report.json" "$work/gpu/results.jsonl" "$out/"
tar -C "$work/gpu" -czf "$out/plots.tar.gz" $(cd "$work/gpu" && ls ./*.svg)
cat "$out/report.md"
grep "took" "$out/gpu.log"
