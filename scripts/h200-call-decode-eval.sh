#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) for two measurements that wait on no
# new code:
#  1. issue 16: Star's decode across HOSTS (4) `longctx host --backend webgpu` processes after the star-decode
#     changes (one submit + read per answer, split-KV decode on the hosts, the prepared answer kept), the
#     Llama-3.2-1B shape (random weights, f16) at STAR_CONTEXTS (32K,128K), beside one process with flash,
#     within STAR_SECONDS (250): $OUT/star-model/;
#  2. issue 18: time to first token from a saved 128K flash session after the direct restore (session-bench,
#     1B shape, f16), within SESSION_SECONDS (120): $OUT/session/;
#  3. issue 13: the remap test split (seed 2, `remap:window=512,topk=512`, chosen on the dev split in
#     docs/eval-h200-remap/) taken towards 100 cases per length at EVAL_LENGTHS (4K-32K), resuming the cases
#     already in docs/eval-h200-remap/results.jsonl, in what is left: $OUT/eval/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt.
#   bash scripts/pack-device.sh && xz -T2 -6 -c /usr/sbin/nats-server > .device/nats-server.xz
#   source .device/prelude.sh && bash scripts/h200-call-decode-eval.sh
# Dry run here (lavapipe): OUT=/tmp/dry-de STAR_MODEL=test/fixtures/passkey-2k STAR_CONTEXTS=512 HOSTS=2 DECODE=4
#   STORAGE=f32 EVAL_LENGTHS=2K EVAL_CASES=12 SHAPE=tiny SESSION_CONTEXT=1K
#   NATS_SERVER=/usr/sbin/nats-server bash scripts/h200-call-decode-eval.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/star-model" "$out/eval"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
find_nats_server

# 1. Star across hosts, decode included.
within "$(window "${STAR_SECONDS:-250}")" node dist/src/cli/main.js bench-star-model \
  --model "${STAR_MODEL:-random:llama-3.2-1b}" --contexts "${STAR_CONTEXTS:-32K,128K}" --methods star \
  --hosts "${HOSTS:-4}" --decode "${DECODE:-32}" --timeout 180 --out-dir "$out/star-model" --backend webgpu \
  --storage "${STORAGE:-f16}" 2> "$out/star-model/log.txt"
stamp star $?

# 2. A saved session at 128K.
mkdir -p "$out/session"
within "$(window "${SESSION_SECONDS:-120}")" node dist/src/cli/session-bench.js --random "${SHAPE:-1b}" --backend webgpu \
  --storage "${STORAGE:-f16}" --context "${SESSION_CONTEXT:-128K}" --attention flash --json "$out/session/session.json" \
  > "$out/session/session.md" 2> "$out/session/session.err"
stamp session $?

# 3. The remap test split, resumed: the earlier cases count, new ones are appended.
cp docs/eval-h200-remap/results.jsonl "$out/eval/results.jsonl"
budget=$(( $(window 400) - 30 ))
within "$(( budget + 20 ))" node dist/src/cli/main.js eval --model "${PASSKEY_2K:-test/fixtures/passkey-2k}" \
  --tasks passkey --lengths "${EVAL_LENGTHS:-4K,8K,16K,32K}" --cases-per "${EVAL_CASES:-100}" --seed 2 \
  --backend webgpu --storage "${STORAGE:-f16}" --positions remap:window=512,topk=512 --budget-seconds "$budget" \
  --title "passkey (WebGPU)" --out "$out/eval" 2>&1 | grep -v -e "artificially reduced" -e deprecated | tail -n 30 \
  > "$out/eval/log.txt"
stamp eval $?

{
  cat "$out/gpu.txt"
  echo "== star across ${HOSTS:-4} hosts: $(cat "$out/star-exit.txt")"
  cat "$out/star-model/star-model.md" 2>/dev/null || tail -n 15 "$out/star-model/log.txt"
  echo
  echo "== session: $(cat "$out/session-exit.txt")"
  grep -E "^\|" "$out/session/session.md" || tail -n 5 "$out/session/session.err"
  echo
  echo "== remap test split: $(cat "$out/eval-exit.txt")"
  grep -E "^\|" "$out/eval/report.md" 2>/dev/null | head -n 20 || tail -n 20 "$out/eval/log.txt"
  echo
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
