#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included), three measurements in turn, each
# stopped at its window or the call's end:
#  1. `bench model --profile` at PROFILE_CONTEXTS (128K) for flash, window, cca and dsa (issue 11: which kernel
#     holds a missed decode or prefill target, with its share of the GPU time): $OUT/profile/ (model.md holds the
#     per-kernel tables), within PROFILE_SECONDS (240);
#  2. quantised weights at QUANT_CONTEXTS (32K; 4K is recorded): `bench model --weights q4_k|f16|q6_k`, flash,
#     f16 storage (issue 18): $OUT/quant/<weights>/, within QUANT_SECONDS (120);
#  3. scripts/needle-h200.sh (issue 13: the DSA indexer and CCA's cores as retrieval of the asked pass key at
#     8K-128K) with NEEDLE_CASES and NEEDLE_SECONDS per context: $OUT/needle/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt (also printed).
#   bash scripts/pack-device.sh, then carry [".device"]:  source .device/prelude.sh && bash scripts/h200-call-profile.sh
# Dry run here (lavapipe): OUT=/tmp/dry-profile PROFILE_CONTEXTS=1K QUANT_CONTEXTS=512 DECODE=4
#   SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64" NEEDLE_CONTEXTS="1K" NEEDLE_CASES="2"
#   NEEDLE_SECONDS="120" bash scripts/h200-call-profile.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/profile" "$out/quant" "$out/needle"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
read -r -a shape <<< "${SHAPE_ARGS:-}"
decode=${DECODE:-32}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1

# 1. Where the GPU time goes at 128K.
w=$(window "${PROFILE_SECONDS:-240}")
within "$w" bash -c "node dist/src/cli/main.js bench model --profile --backend webgpu --storage f16 \
  --contexts '${PROFILE_CONTEXTS:-128K}' ${shape[*]} --decode $decode --chunk 512 --budget-seconds $(( w - 20 )) \
  --method flash --method window:left=1024 --method cca:group=16,window=1024 --method dsa:topk=2048 \
  --out-dir '$out/profile' 2>&1 | grep -v -e 'artificially reduced' -e deprecated > '$out/profile/run.log'"
stamp profile $?

# 2. Quantised decode at 32K: Q4_K first (the target's numerator), then f16, then Q6_K.
qstart=$(date +%s)
qtotal=$(window "${QUANT_SECONDS:-120}")
for wt in q4_k f16 q6_k; do
  left=$(( qtotal - ($(date +%s) - qstart) ))
  [ "$left" -gt 25 ] || { echo "$wt: no time left" >> "$out/quant/skipped.txt"; continue; }
  weights=(--weights "$wt")
  [ "$wt" = f16 ] && weights=()
  within "$(( left < 50 ? left : 50 ))" bash -c "node dist/src/cli/main.js bench model --backend webgpu --storage f16 \
    ${weights[*]} --contexts '${QUANT_CONTEXTS:-32K}' ${shape[*]} --decode 48 --chunk 512 --budget-seconds 35 \
    --method flash --out-dir '$out/quant/$wt' 2>&1 | grep -v -e 'artificially reduced' -e deprecated > '$out/quant/$wt.log'"
done
stamp quant $?

# 3. The needle as the indexers and cores see it.
OUT="$out/needle" CONTEXTS="${NEEDLE_CONTEXTS:-8K 16K 32K 64K 128K}" CASES="${NEEDLE_CASES:-8 8 6 4 3}" \
  SECONDS_PER="${NEEDLE_SECONDS:-35 35 40 45 60}" within "$(window 300)" bash scripts/needle-h200.sh \
  "${PASSKEY_2K:-test/fixtures/passkey-2k}" > "$out/needle/run.log" 2>&1
stamp needle $?

{
  cat "$out/gpu.txt"
  echo "== profile: $(cat "$out/profile-exit.txt")"
  cat "$out/profile/model.md" 2>/dev/null || tail -n 10 "$out/profile/run.log"
  echo
  echo "== quantised weights at ${QUANT_CONTEXTS:-32K}: $(cat "$out/quant-exit.txt")"
  for wt in q4_k f16 q6_k; do
    node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).rows;
      for (const x of r) console.log(process.argv[2], x.context, x.status, "prefill", (x.prefillTokensPerSecond ?? 0).toFixed(0),
        "decode", (x.decodeTokensPerSecond ?? 0).toFixed(1), "weights MiB", ((x.weightBytes ?? 0) / 2 ** 20).toFixed(1),
        "peak MiB", ((x.peakBytes ?? 0) / 2 ** 20).toFixed(1), x.note ?? "")' "$out/quant/$wt/model.json" "$wt" 2>/dev/null ||
      echo "$wt: no rows ($(tail -n 1 "$out/quant/$wt.log" 2>/dev/null))"
  done
  echo
  echo "== needle: $(cat "$out/needle-exit.txt")"
  cat "$out/needle/needle.log" 2>/dev/null
  for f in "$out"/needle/needle-*.json; do [ -f "$f" ] && echo "$f: $(wc -c < "$f") bytes"; done
  echo
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
