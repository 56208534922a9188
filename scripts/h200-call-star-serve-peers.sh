#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 540, prelude included) that runs four measurements in turn,
# each stopped (with every process below it) at its window or the call's end, whichever is first:
#  1. scripts/bench-star-model-h200.sh, small part only (its ~200 s; STAR_LARGE=1 also runs the large part in
#     what is left of STAR_SECONDS, default 240): $OUT/star-model/;
#  2. serve-bench (src/cli/serve-bench.ts): a random 1B-shaped model, SERVE_CLIENTS (1,4,16) streaming clients,
#     512-token prompts, 32 tokens each, under SERVE_SECONDS (100): $OUT/serve/serve-1b.{json,md};
#  3. time to first token from a saved session against a full prefill (`longctx generate --save-session` then
#     `--session`, both passkey-2k with YaRN x16 on SESSION_CHARS of kjv-head.txt, ~29K tokens; beside a run with a
#     one-token prompt, the load cost both include), under SESSION_SECONDS (60): $OUT/session/;
#  4. `longctx bench peers` (onnxruntime-web beside longctx, random Llama-3.2-1B shape) at PEERS_CONTEXTS (4K,16K)
#     in the time left (at most 190 s; its --budget-seconds 20 s less): $OUT/peers/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt (also printed).
#   bash scripts/pack-device.sh --with-ort && xz -T2 -6 -c /usr/sbin/nats-server > .device/nats-server.xz
#   source .device/prelude.sh && bash scripts/h200-call-star-serve-peers.sh
# NATS_SERVER (default .device/nats-server, else .device/nats-server.xz unpacked to /tmp) is the star part's.
# Dry run here (lavapipe): OUT=/tmp/dry-star-serve-peers CALL_SECONDS=500 STAR_SECONDS=150 CONTEXTS=256
#   LARGE_CONTEXTS=512 LARGE_MODEL=test/fixtures/passkey-2k HOSTS=2 DECODE=4 NATS_SERVER=/usr/sbin/nats-server
#   SERVE_RANDOM=tiny SERVE_CLIENTS=1,4 SERVE_PROMPT=64 SERVE_MAX_TOKENS=8 SERVE_CONTEXT=256 STORAGE=f32
#   SESSION_CHARS=4000 PEER=wasm PEERS_SHAPE=tiny PEERS_CONTEXTS=256,512 PEERS_DECODE=8
#   bash scripts/h200-call-star-serve-peers.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/serve" "$out/session" "$out/peers"
call_deadline "${CALL_SECONDS:-540}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
backend="${BACKEND:-webgpu}"
storage="${STORAGE:-f16}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1

# 1. Star model across hosts.
if [ -z "${NATS_SERVER:-}" ]; then
  if [ -x .device/nats-server ]; then NATS_SERVER=.device/nats-server
  elif [ -f .device/nats-server.xz ]; then
    mkdir -p /tmp/longctx-nats && xz -dc .device/nats-server.xz > /tmp/longctx-nats/nats-server \
      && chmod +x /tmp/longctx-nats/nats-server && NATS_SERVER=/tmp/longctx-nats/nats-server
  fi
fi
# Not a length: the large part stops at once with an InputError (its log.txt), and the script exits 1.
[ "${STAR_LARGE:-0}" = 1 ] || export LARGE_CONTEXTS=skipped
OUT="$out" NATS_SERVER="${NATS_SERVER:-}" within "$(window "${STAR_SECONDS:-240}")" \
  bash scripts/bench-star-model-h200.sh > "$out/star-model.log" 2>&1
stamp star-model $?

# 2. The server under 1-16 concurrent clients.
within "$(window "${SERVE_SECONDS:-100}")" node dist/src/cli/serve-bench.js --random "${SERVE_RANDOM:-1b}" \
  --backend "$backend" --storage "$storage" --clients "${SERVE_CLIENTS:-1,4,16}" \
  --prompt-tokens "${SERVE_PROMPT:-512}" --max-tokens "${SERVE_MAX_TOKENS:-32}" --context "${SERVE_CONTEXT:-4096}" \
  --json "$out/serve/serve-1b.json" > "$out/serve/serve-1b.md" 2> "$out/serve/serve-1b.err"
stamp serve $?

# 3. Saved session against a full prefill: three `generate` runs, each timed whole (model load included).
session() {
  local s="$out/session" m=test/fixtures/passkey-2k file=/tmp/longctx-session-bench.session
  local common=(--model "$m" --backend "$backend" --storage "$storage" --rope yarn:factor=16,original=2048)
  head -c "${SESSION_CHARS:-100000}" data/kjv-head.txt > /tmp/longctx-session-prompt.txt
  timed() { # name, generate's arguments
    local name=$1 t0
    shift
    t0=$(date +%s.%N)
    node dist/src/cli/main.js generate "${common[@]}" "$@" > "$s/$name.out" 2> "$s/$name.err" || return 1
    echo "$name: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s wall;" \
      "$(grep -h -e '^generate: prefill' -e 'restored\|replayed' -e '^generate: saved' "$s/$name.err" | tr '\n' ' ')"
  }
  rm -f "$file"
  timed load-only --prompt x --max-tokens 1 &&
    timed full-prefill --prompt-file /tmp/longctx-session-prompt.txt --max-tokens 1 --save-session "$file" &&
    timed from-session --session "$file" --prompt " And" --max-tokens 1
  local rc=$?
  rm -f "$file"
  return "$rc"
}
within "$(window "${SESSION_SECONDS:-60}")" session > "$out/session/session.md" 2>&1
stamp session $?
rm -f /tmp/longctx-session-bench.session # left by a run stopped at its window

# 4. onnxruntime-web beside longctx.
peers=$(window 190)
within "$peers" node dist/src/cli/main.js bench peers --backend "$backend" --storage "$storage" \
  --peer "${PEER:-webgpu}" --shape "${PEERS_SHAPE:-llama-3.2-1b}" --contexts "${PEERS_CONTEXTS:-4K,16K}" \
  --decode "${PEERS_DECODE:-128}" --budget-seconds $(( peers - 20 )) --out-dir "$out/peers" \
  > "$out/peers/peers.log" 2>&1
stamp peers $?

{
  cat "$out/gpu.txt"
  echo "== star model (scripts/bench-star-model-h200.sh): $(cat "$out/star-model-exit.txt")" \
    "$([ "${STAR_LARGE:-0}" = 1 ] || echo "(large part skipped: exit 1 expected)")"
  cat "$out/star-model/summary.md" 2>/dev/null || cat "$out/star-model/small/star-model.md" 2>/dev/null ||
    tail -n 10 "$out/star-model.log"
  echo
  echo "== serve-bench: $(cat "$out/serve-exit.txt")"
  cat "$out/serve/serve-1b.md"
  tail -n 3 "$out/serve/serve-1b.err"
  echo
  echo "== saved session against a full prefill: $(cat "$out/session-exit.txt")"
  cat "$out/session/session.md"
  echo
  echo "== bench peers: $(cat "$out/peers-exit.txt")"
  cat "$out/peers/peers.md" 2>/dev/null || grep -v -e "artificially reduced" -e deprecated "$out/peers/peers.log" | tail -n 15
  echo
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
