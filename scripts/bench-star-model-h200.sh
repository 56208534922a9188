#!/usr/bin/env bash
# The Star-model measurement of issue 16 in one device call of at most 8 minutes (`longctx bench-star-model`):
# a model across 4 `longctx host` processes on --backend webgpu (each its own Dawn device on the one GPU)
# over a private loopback nats-server, beside one process with flash on the same GPU: time to first token,
# decode tokens/s, the query host's wait per token, bytes moved, and whether the greedy ids equal flash's.
#   source .device/prelude.sh && NATS_SERVER=.device/nats-server bash scripts/bench-star-model-h200.sh
# (carry Debian's nats-server: cp /usr/sbin/nats-server .device/nats-server before packing).
# Two parts, results in $OUT/star-model/{small,large}/ and $OUT/star-model/summary.md:
# - small (about 200 s): the passkey-2k model (5.3M parameters) at 1K-4K, Star with blocks of N/16 (anchor
#   = block) and of N/4 (the paper's), and Ring. On WebGPU hosts Star's and Ring's KV and flash run on the
#   GPU (Ring's KV shards travel over NATS in f32 in phase 1): on one shared GPU Star/Ring is the work ratio
#   plus Ring's transfers.
# - large (the rest): the Llama-3.2-1B shape with random weights in f16 storage (every host's weights and
#   KV in f16 on its device; q, states and Ring's shards over NATS in f32) at LARGE_CONTEXTS (default
#   8K,32K), LARGE_METHODS (default star,ring: per context flash, Star N/16, Star N/4, then Ring, so a cut
#   keeps Star's rows), beside one process with flash in f16: the issue's shape and dtype, REDUCED in context
#   length to fit one call (each host builds and hashes its own 1B model).
# Overrides: CONTEXTS, LARGE_CONTEXTS, LARGE_METHODS, HOSTS, DECODE, MODEL, LARGE_MODEL, LARGE_STORAGE
# (default f16 on webgpu), BACKEND (cpu: the CPU stand-in, f32 throughout).
# A dry run elsewhere: CONTEXTS=256 LARGE_CONTEXTS=512 LARGE_MODEL=test/fixtures/passkey-2k HOSTS=2 DECODE=4.
set -uo pipefail
root="${OUT:-bench-out}/star-model"
mkdir -p "$root/small" "$root/large"
if [ -n "${NATS_SERVER:-}" ]; then
  [ -x "$NATS_SERVER" ] || { echo "NATS_SERVER=$NATS_SERVER is not executable" >&2; exit 1; }
  export NATS_SERVER
fi
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nproc > "$root/cpus.txt"
backend="${BACKEND:-webgpu}"
hosts="${HOSTS:-4}"
if [ "$backend" = cpu ]; then large_storage=f32; else large_storage="${LARGE_STORAGE:-f16}"; fi
part() { # name seconds model contexts methods storage
  timeout "$2" node dist/src/cli/main.js bench-star-model --model "$3" --contexts "$4" --methods "$5" \
    --hosts "$hosts" --decode "${DECODE:-16}" --timeout 120 --out-dir "$root/$1" --backend "$backend" \
    --storage "$6" 2> "$root/$1/log.txt"
  local s=$?
  [ "$s" -eq 124 ] && echo "$1: cut off at $2 s: rows.jsonl holds what finished" | tee -a "$root/$1/log.txt"
  return "$s"
}
part small 200 "${MODEL:-test/fixtures/passkey-2k}" "${CONTEXTS:-1K,2K,4K}" star,ring f32
small=$?
part large 260 "${LARGE_MODEL:-random:llama-3.2-1b}" "${LARGE_CONTEXTS:-8K,32K}" "${LARGE_METHODS:-star,ring}" "$large_storage"
large=$?
{
  echo "Model across $hosts $backend host processes ($(cat "$root/cpus.txt") cores)"
  echo
  echo "Small: ${MODEL:-passkey-2k}, f32; Star's and Ring's KV and flash on each host's GPU"
  echo
  cat "$root/small/star-model.md" 2>/dev/null || cat "$root/small/rows.jsonl"
  echo
  echo "Large: ${LARGE_MODEL:-random:llama-3.2-1b}, $large_storage storage (f32 over NATS); REDUCED (contexts ${LARGE_CONTEXTS:-8K,32K}, not 32K-128K)"
  echo
  cat "$root/large/star-model.md" 2>/dev/null || cat "$root/large/rows.jsonl"
} | tee "$root/summary.md"
[ "$small" -eq 0 ] && [ "$large" -eq 0 ]
