#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 560, prelude included), three measurements in turn:
#  1. scripts/nan-h200.sh (issue 14): the tensor-core kernels' NaN handling where subgroup matrices are real,
#     and flash tc2 / sgmat-v1 timings after the non-finite-V flag (NAN_SECONDS, default 235);
#  2. decode after the uniform-write skip, DSA's in-batch clear and the fused RoPE and norm checks (issue 11):
#     bench model, window / CCA / DSA / flash at 4K and 128K, 64 decoded tokens (DECODE_SECONDS, default 110);
#  3. scripts/bench-quant-h200.sh (issue 18): the quantised-kernel test, then decode of Q4_K / f16 / Q6_K
#     (the time left, less 15 s for the archive).
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt (also printed).
#   bash scripts/pack-device.sh   then   source .device/prelude.sh && bash scripts/h200-call-nan-quant.sh
# Dry run here: OUT=/tmp/dry-nq CALL_SECONDS=500 NAN_SECONDS=150 DECODE_SECONDS=120 DECODE_CONTEXTS=256 \
#   SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64" bash scripts/h200-call-nan-quant.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/nan" "$out/quant" "$out/decode"
call_deadline "${CALL_SECONDS:-560}"
summary="$out/summary.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$summary" 2>&1
nan_seconds=${NAN_SECONDS:-235}
OUT="$out/nan" TOTAL_SECONDS=$(( nan_seconds - 5 )) within "$nan_seconds" bash scripts/nan-h200.sh > "$out/nan/stdout.txt" 2>&1
echo "== nan-h200.sh: exit $?, $(( $(date +%s) - started )) s into the call" >> "$summary"
tail -n 30 "$out/nan/stdout.txt" >> "$summary"
left=${DECODE_SECONDS:-110}
read -r -a shape <<<"${SHAPE_ARGS:-}"
within "$left" node dist/src/cli/main.js bench model --backend webgpu --storage f16 "${shape[@]}" \
  --contexts "${DECODE_CONTEXTS:-4K,128K}" --decode 64 --chunk 512 --budget-seconds "$(( left - 10 ))" \
  --out-dir "$out/decode" --method window:left=1024 --method cca:group=16,window=1024 --method dsa:topk=2048 --method flash \
  > "$out/decode/stdout.txt" 2>&1
echo "== bench model (decode after the write skip): exit $?, $(( $(date +%s) - started )) s into the call" >> "$summary"
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).rows;
for (const x of r) console.log([x.method, x.context, x.status, "prefill", x.prefillTokensPerSecond?.toFixed?.(0),
  "decode", x.decodeTokensPerSecond?.toFixed?.(1), "submits/token", x.submitsPerToken, "writes/token", x.writesPerToken].join(" "))' \
  "$out/decode/model.json" >> "$summary" 2>&1
quant_left=$(( $(seconds_left) - 15 ))
OUT="$out/quant" CONTEXTS="${QUANT_CONTEXTS:-4K}" TOTAL_SECONDS=$(( quant_left - 10 )) within "$quant_left" bash scripts/bench-quant-h200.sh > "$out/quant/stdout.txt" 2>&1
echo "== bench-quant-h200.sh: exit $?, $(( $(date +%s) - started )) s into the call" >> "$summary"
cat "$out/quant/quant-h200/summary.txt" >> "$summary" 2> /dev/null || tail -n 30 "$out/quant/stdout.txt" >> "$summary"
cat "$summary"
pack_results "$out"
