#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) after the profile's fixes:
#  1. `bench model` at 128K (decode 128), flash, window, cca and dsa, unprofiled: decode after CCA's decode-v4
#     and the latency-bound RMSNorm rewritten (issue 11): $OUT/model/, within MODEL_SECONDS (200);
#  2. quantised decode at 32K, Q4_K and Q6_K (f16 ran in the profile call), each with its own budget (issue 18):
#     $OUT/quant/<weights>/, within QUANT_SECONDS (170);
#  3. Star across 4 WebGPU hosts for the 1B shape (scripts/h200-call-star.sh's part 2, Star only) at
#     STAR_CONTEXTS (32K,128K) in what is left (issue 16): $OUT/star/.
#   bash scripts/pack-device.sh && xz -T2 -6 -c /usr/sbin/nats-server > .device/nats-server.xz
#   source .device/prelude.sh && bash scripts/h200-call-remeasure.sh
# Dry run: OUT=/tmp/dry-re CONTEXTS=1K QUANT_CONTEXTS=512 SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64"
#   STAR_MODEL=test/fixtures/passkey-2k STAR_CONTEXTS=512 HOSTS=2 STORAGE=f32 NATS_SERVER=/usr/sbin/nats-server bash ...
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/model" "$out/quant" "$out/star"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
read -r -a shape <<< "${SHAPE_ARGS:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
w=$(window "${MODEL_SECONDS:-200}")
within "$w" bash -c "node dist/src/cli/main.js bench model --backend webgpu --storage f16 --contexts '${CONTEXTS:-128K}' \
  ${shape[*]} --decode 128 --chunk 512 --budget-seconds $(( w - 15 )) --method flash --method window:left=1024 \
  --method cca:group=16,window=1024 --method dsa:topk=2048 --out-dir '$out/model' 2>&1 |
  grep -v -e 'artificially reduced' -e deprecated > '$out/model/run.log'"
stamp model $?
for wt in q4_k q6_k; do
  w=$(window "${QUANT_SECONDS:-85}")
  [ "$w" -gt 30 ] || continue
  within "$w" bash -c "node dist/src/cli/main.js bench model --backend webgpu --storage f16 --weights $wt \
    --contexts '${QUANT_CONTEXTS:-32K}' ${shape[*]} --decode 48 --chunk 512 --budget-seconds $(( w - 5 )) --method flash \
    --out-dir '$out/quant/$wt' 2>&1 | grep -v -e 'artificially reduced' -e deprecated > '$out/quant/$wt.log'"
done
stamp quant $?
find_nats_server
within "$(window 400)" node dist/src/cli/main.js bench-star-model --model "${STAR_MODEL:-random:llama-3.2-1b}" \
  --contexts "${STAR_CONTEXTS:-32K,128K}" --methods star --hosts "${HOSTS:-4}" --decode 32 --timeout 180 \
  --out-dir "$out/star" --backend webgpu --storage "${STORAGE:-f16}" 2> "$out/star/log.txt"
stamp star $?
{
  cat "$out/gpu.txt"
  echo "== model: $(cat "$out/model-exit.txt")"
  grep -E "^\| longctx" "$out/model/model.md" 2>/dev/null || tail -n 5 "$out/model/run.log"
  echo "== quant: $(cat "$out/quant-exit.txt")"
  for wt in q4_k q6_k; do grep -E "^\| longctx" "$out/quant/$wt/model.md" 2>/dev/null || tail -n 2 "$out/quant/$wt.log"; done
  echo "== star: $(cat "$out/star-exit.txt")"
  cat "$out/star/star-model.md" 2>/dev/null || tail -n 15 "$out/star/log.txt"
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
