#!/usr/bin/env bash
# The Star-model measurement of issue 16 in one device call of at most 8 minutes (`longctx bench-star-model`):
# a model across 4 `longctx host` processes over a private loopback nats-server; Star with blocks of N/16
# (anchor = block) and of N/4 (one per host, the paper's), and Ring (exact, KV shards travel), beside one
# process with flash: time to first token, decode tokens/s, the query host's wait per token, bytes moved,
# and whether the greedy ids equal flash's. Results in $OUT/star-model/ (rows.jsonl, star-model.md).
#   source .device/prelude.sh && NATS_SERVER=.device/nats-server bash scripts/bench-star-model-h200.sh
# (carry Debian's nats-server: cp /usr/sbin/nats-server .device/nats-server before packing).
# The hosts run on --backend webgpu (BACKEND=cpu for the CPU stand-in), each its own Dawn device on the one
# GPU, and the one-process flash baseline on the same backend. REDUCED, and said so in the table's title: a
# WebGPU host runs the model's matrices on the GPU but its attention over its own cache (Star's phase 1 and
# its answers to the query host) on the host CPU (src/model/caches/star-host-layer-gpu.ts), so the issue's
# grid (Llama-3.2-1B shape at 32K-128K) would be hours of JavaScript attention; this runs the passkey-2k
# model (5.3M parameters) at 1K-4K tokens: the protocol's real cost and the work ratio Star/Ring, not the
# GPU's attention speed. CONTEXTS, HOSTS, DECODE, MODEL and BACKEND override the grid (a dry run elsewhere:
# CONTEXTS=256 DECODE=4 HOSTS=2).
set -uo pipefail
out="${OUT:-bench-out}/star-model"
mkdir -p "$out"
if [ -n "${NATS_SERVER:-}" ]; then
  [ -x "$NATS_SERVER" ] || { echo "NATS_SERVER=$NATS_SERVER is not executable" >&2; exit 1; }
  export NATS_SERVER
fi
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nproc > "$out/cpus.txt"
timeout 470 node dist/src/cli/main.js bench-star-model --model "${MODEL:-test/fixtures/passkey-2k}" \
  --contexts "${CONTEXTS:-1K,2K,4K}" --hosts "${HOSTS:-4}" --decode "${DECODE:-16}" --timeout 120 --out-dir "$out" --backend "${BACKEND:-webgpu}" \
  2> "$out/log.txt"
status=$?
[ "$status" -eq 124 ] && echo "cut off at 470 s: rows.jsonl holds what finished" | tee -a "$out/log.txt"
{
  echo "Model across ${HOSTS:-4} ${BACKEND:-webgpu} host processes ($(cat "$out/cpus.txt") cores), ${MODEL:-passkey-2k}; REDUCED (each host's attention over its cache on the host CPU)"
  echo
  cat "$out/star-model.md" 2>/dev/null || cat "$out/rows.jsonl"
} | tee "$out/summary.md"
exit "$status"
