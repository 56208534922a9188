#!/usr/bin/env bash
# Star against Ring with the same hosts on the GPU machine (`longctx bench star`): 4 `longctx host`
# processes that SHARE the one GPU (each its own WebGPU device), over a private loopback nats-server, causal f16, 32 heads, D 128,
# 32K..128K; phase-1 (context encoding) times into $OUT/star/ (star.json, star.md).
#   source .device/prelude.sh && NATS_SERVER=.device/nats-server bash scripts/bench-star-h100.sh
# The device has no nats-server: carry Debian's binary (it links only libc) in the tree, e.g.
#   cp /usr/sbin/nats-server .device/nats-server     (before the device call; carry .device)
# and point NATS_SERVER at it. Must finish under 4 minutes: each length is cut off by the deadline.
set -uo pipefail
out="${OUT:-bench-out}/star"
mkdir -p "$out"
: "${NATS_SERVER:?set NATS_SERVER to a nats-server binary (copy /usr/sbin/nats-server into .device)}"
[ -x "$NATS_SERVER" ] || { echo "NATS_SERVER=$NATS_SERVER is not executable" >&2; exit 1; }
export NATS_SERVER
"$NATS_SERVER" --version | tee "$out/nats-server.txt"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
deadline=$(( $(date +%s) + ${STAR_SECONDS:-220} ))
left() { echo $(( deadline - $(date +%s) )); }
# A correctness check across processes on the GPU first (small, fetched, against one process on the CPU).
timeout 60 node dist/src/cli/main.js bench star --backend webgpu --hosts 4 --lengths 2K --heads 4 --head-dim 128 --dtype f16 \
  --verify --out-dir "$out/verify" 2>&1 | grep -v "artificially reduced"
for len in ${STAR_LENGTHS:-32K 64K 128K}; do
  [ "$(left)" -gt 10 ] || { echo "deadline: skipping $len" | tee -a "$out/skipped.txt"; continue; }
  timeout "$(left)" node dist/src/cli/main.js bench star --backend webgpu --hosts "${STAR_HOSTS:-4}" --lengths "$len" \
    --heads 32 --head-dim 128 --dtype f16 --timeout 200 --out-dir "$out/$len" 2>&1 | grep -v "artificially reduced"
done
cat "$out"/*/star.md > "$out/star.md" 2>/dev/null
cat "$out/star.md"
