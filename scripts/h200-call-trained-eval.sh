#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) after the trained DSA indexer became
# resident on WebGPU (attention/layers/dsa-trained-gpu.ts; it ran through a host layer before, 40-90 s a case):
#  1. passkey accuracy (test split, seed 2) with dsa:topk=2048 and the passkey-2k indexer trained by
#     scripts/h200-call-indexer-session.sh (INDEXER, default .device/passkey-indexer.safetensors) against exact
#     attention, both under YaRN x16, 8K-32K then 64K-128K, round robin: $OUT/eval/;
#  2. `eval-mass --needle passkey` at 16K and 32K (2K and 8K ran in the training call): $OUT/mass/;
#  3. session-bench at 128K (1B shape, f16), flash, CCA and DSA (SESSION_SECONDS=0 skips it): $OUT/session/;
#  4. the remap test split (issue 13) resumed from docs/eval-h200-remap/ in what is left: $OUT/remap/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt.
#   bash scripts/pack-device.sh && cp INDEXER .device/passkey-indexer.safetensors && source .device/prelude.sh &&
#   bash scripts/h200-call-trained-eval.sh
# Dry run here (lavapipe): OUT=/tmp/dry-te INDEXER=/tmp/ix.safetensors EVAL_LENGTHS=1K EVAL_CASES=2 LONG_LENGTHS=2K
#   LONG_CASES=1 MASS_CONTEXTS=1024 MASS_CASES=1 SHAPE=tiny SESSION_CONTEXT=1K REMAP_LENGTHS=2K STORAGE=f32 \
#   bash scripts/h200-call-trained-eval.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/eval" "$out/mass" "$out/session" "$out/remap"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
quiet() { grep -v -e 'artificially reduced' -e deprecated; }
yarn=yarn:factor=16,original=2048
storage="${STORAGE:-f16}"
model=/tmp/longctx-passkey-ix
rm -rf "$model" && cp -r "${PASSKEY_2K:-test/fixtures/passkey-2k}" "$model" &&
  cp "${INDEXER:-.device/passkey-indexer.safetensors}" "$model/indexer.safetensors" || exit 2

# 1. Accuracy, the trained indexer resident.
dsa_vs_exact "$model" "$out/eval" "${SHORT_SECONDS:-110}" "${EVAL_LENGTHS:-8K,16K,32K}" "${EVAL_CASES:-100}"
dsa_vs_exact "$model" "$out/eval" "${LONG_SECONDS:-140}" "${LONG_LENGTHS:-64K,128K}" "${LONG_CASES:-50}"
stamp eval $?

# 2. Where the trained indexer looks at 16K and 32K.
within "$(window "${MASS_SECONDS:-100}")" node dist/src/cli/main.js eval-mass --needle passkey --model "$model" \
  --contexts "${MASS_CONTEXTS:-16384,32768}" --cases "${MASS_CASES:-3}" --budgets 256,2048 --rope "$yarn" \
  --backend webgpu --out "$out/mass/needle.json" > "$out/mass/log.txt" 2>&1
stamp mass $?

# 3. Saved sessions at 128K.
[ "${SESSION_SECONDS:-130}" -gt 0 ] && within "$(window "${SESSION_SECONDS:-130}")" node dist/src/cli/session-bench.js --random "${SHAPE:-1b}" \
  --backend webgpu --storage "$storage" --context "${SESSION_CONTEXT:-128K}" --attention flash \
  --attention cca:group=16,window=1024 --attention dsa --json "$out/session/session.json" \
  > "$out/session/session.md" 2> "$out/session/session.err"
stamp session $?

# 4. The remap test split resumed.
cp docs/eval-h200-remap/results.jsonl "$out/remap/results.jsonl"
budget=$(( $(window 400) - 25 ))
[ "$budget" -gt 20 ] && within "$(( budget + 20 ))" node dist/src/cli/main.js eval \
  --model "${PASSKEY_2K:-test/fixtures/passkey-2k}" --tasks passkey --lengths "${REMAP_LENGTHS:-4K,8K,16K,32K,64K}" \
  --cases-per "${REMAP_CASES:-100}" --seed 2 --backend webgpu --storage "$storage" \
  --positions remap:window=512,topk=512 --budget-seconds "$budget" --title "passkey (WebGPU)" --out "$out/remap" 2>&1 |
  quiet | tail -n 30 > "$out/remap/log.txt"
stamp remap $?

{
  cat "$out/gpu.txt"
  echo "== eval: $(cat "$out/eval-exit.txt")"; grep -E "^\|" "$out/eval/report.md" 2> /dev/null | head -n 24
  echo "== mass: $(cat "$out/mass-exit.txt")"; grep -E "^## " "$out/mass/needle.md" 2> /dev/null
  echo "== session: $(cat "$out/session-exit.txt")"
  grep -E "^\|" "$out/session/session.md" || tail -n 5 "$out/session/session.err"
  echo "== remap: $(cat "$out/remap-exit.txt" 2> /dev/null)"; grep -E "^\|" "$out/remap/report.md" 2> /dev/null | sed -n 3,6p
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
