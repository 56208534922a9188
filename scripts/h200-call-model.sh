#!/usr/bin/env bash
# Issue 11/12's device call (~9.5 minutes): the split-KV decoding sweep (every version and splitting), DSA's decide
# versions as one resident layer (bench resident), the version
# fastest at 128K keys handed to the model bench's flash and window (DECODE_KERNEL), a V8 CPU profile of decoding
# at 1K (host-bound or waiting on the GPU: the fixed cost per token) beside BATCH_SWEEP's passes per submission,
# then scripts/bench-model-h200.sh.
# Results: $OUT/decode-sweep.{md,json}, $OUT/profile/, $OUT/model-h200/, packed into $OUT/results.tar.gz.
# Dry run on lavapipe: SWEEP_ARGS="--keys 256,1024" PROFILE_CONTEXT=256 CONTEXTS=256 DECODE=4 TOTAL_SECONDS=400 \
#   SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64" OUT=/tmp/dry-model bash scripts/h200-call-model.sh
#   source .device/prelude.sh && bash scripts/h200-call-model.sh      (carry .device; dist/ built)
set -uo pipefail
out="${OUT:-bench-out}"
mkdir -p "$out/profile"
start=$(date +%s)
quiet() { grep -v -e "artificially reduced" -e "deprecated"; }
timeout 150 node dist/scripts/decode-sweep.js ${SWEEP_ARGS:-} 2>&1 | quiet > "$out/decode-sweep.log"
grep "^|" "$out/decode-sweep.log" > "$out/decode-sweep.md"
grep "^\[" "$out/decode-sweep.log" > "$out/decode-sweep.json"
best=$(node -e 'const rows = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const most = Math.max(...rows.map((x) => x.keys));
const r = rows.filter((x) => x.keys === most).sort((x, y) => x.us - y.us);
console.log(r[0]?.version ?? "")' "$out/decode-sweep.json" 2>/dev/null)
echo "decode sweep: fastest at 128K keys: ${best:-none}"
# DSA's selection decide step, serial against a workgroup per token, as one layer of the model (and flash beside it).
timeout 120 node dist/src/cli/main.js bench resident --contexts "${RESIDENT_CONTEXTS:-32K,128K}" --methods flash,dsa \
  --decide serial,workgroup --decode 32 ${RESIDENT_ARGS:-} --out-dir "$out/resident-decide" 2>&1 | quiet | tail -n 8
timeout 80 node --cpu-prof --cpu-prof-dir "$out/profile/prof" dist/src/cli/main.js bench model --backend webgpu \
  --storage f16 ${SHAPE_ARGS:-} --contexts "${PROFILE_CONTEXT:-1K}" --decode 96 --chunk 512 --budget-seconds 60 \
  --out-dir "$out/profile/run" --method window:left=1024 2>&1 | quiet | grep "^| longctx" | tee "$out/profile/decode.txt"
# The submission batch (runtime/submit-batch.ts) against a submission per pass and a larger batch, same decode.
for b in ${BATCH_SWEEP:-1 64}; do
  timeout 60 node dist/src/cli/main.js bench model --backend webgpu --storage f16 ${SHAPE_ARGS:-} \
    --contexts "${PROFILE_CONTEXT:-1K}" --decode 96 --chunk 512 --budget-seconds 45 --batch-passes "$b" \
    --out-dir "$out/profile/batch-$b" --method window:left=1024 2>&1 | quiet | grep "^| longctx" |
    sed "s/^/batch-passes $b: /" | tee -a "$out/profile/decode.txt"
done
node dist/scripts/cpu-profile-summary.js "$out/profile/prof" --top 25 > "$out/profile/profile.txt" 2>&1
head -n 12 "$out/profile/profile.txt"
rm -rf "$out/profile/prof"
left=$((${TOTAL_SECONDS:-565} - ($(date +%s) - start)))
DECODE_KERNEL="$best" TOTAL_SECONDS="$left" bash scripts/bench-model-h200.sh
echo "h200-call-model: $(($(date +%s) - start)) s"
# The device brings back few files: one archive of everything.
(cd "$out" && tar -czf /tmp/results.tar.gz --exclude=results.tar.gz . && find . -mindepth 1 -delete && mv /tmp/results.tar.gz .)
