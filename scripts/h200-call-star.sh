#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) for issue 16's large measurement:
#  1. accuracy first (speed is reported only with the accuracy it costs): passkey-2k with YaRN x16 at
#     ACC_LENGTHS (8K,16K,32K), ACC_CASES cases each, for exact attention (what Ring computes), Star with blocks
#     of N/16 and Star with blocks of N/4 (anchor = block), in one process (the cross-host runs give the
#     one-process star layers' ids: test/star-model.test.ts), within ACC_SECONDS (150): $OUT/accuracy/;
#  2. the Llama-3.2-1B shape (random weights, f16 storage) across HOSTS (4) `longctx host --backend webgpu`
#     processes at LARGE_CONTEXTS (32K,64K,128K): Star (blocks N/16 and N/4) beside one process with flash,
#     then Ring (exact) at RING_CONTEXTS (32K,128K) in what is left: $OUT/star-model/{star,ring}/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt.
#   bash scripts/pack-device.sh && xz -T2 -6 -c /usr/sbin/nats-server > .device/nats-server.xz
#   source .device/prelude.sh && bash scripts/h200-call-star.sh
# Dry run here (lavapipe): OUT=/tmp/dry-star ACC_LENGTHS=2K,3K ACC_CASES=1 LARGE_MODEL=test/fixtures/passkey-2k
#   LARGE_CONTEXTS=512 RING_CONTEXTS=512 HOSTS=2 DECODE=4 STORAGE=f32 NATS_SERVER=/usr/sbin/nats-server
#   bash scripts/h200-call-star.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/accuracy" "$out/star-model/star" "$out/star-model/ring"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
find_nats_server
model="${PASSKEY_2K:-test/fixtures/passkey-2k}"

# 1. Accuracy: one eval per length, since Star's blocks are a fraction of it.
accuracy() {
  local len n
  for len in ${ACC_LENGTHS//,/ }; do
    n=$(node -e 'const s = process.argv[1]; console.log(/K$/i.test(s) ? 1024 * parseInt(s) : parseInt(s))' "$len")
    node dist/src/cli/main.js eval --model "$model" --tasks passkey --lengths "$len" --cases-per "${ACC_CASES:-10}" \
      --seed 2 --backend webgpu --storage "${STORAGE:-f16}" --rope yarn:factor=16,original=2048 --attention flash \
      --attention "star:block=$(( n / 16 ))" --attention "star:block=$(( n / 4 ))" --budget-seconds "$1" \
      --out "$out/accuracy/$len" 2>&1 | grep -v -e "artificially reduced" -e deprecated | tail -n 20 > "$out/accuracy/$len.log"
  done
}
ACC_LENGTHS="${ACC_LENGTHS:-8K,16K,32K}"
per=$(( $(window "${ACC_SECONDS:-150}") / $(echo "${ACC_LENGTHS//,/ }" | wc -w) ))
within "$(window "${ACC_SECONDS:-150}")" accuracy "$(( per - 5 ))"
stamp accuracy $?

# 2. The 1B shape across hosts: Star at every context first, then Ring.
part() { # name seconds contexts methods
  within "$2" node dist/src/cli/main.js bench-star-model --model "${LARGE_MODEL:-random:llama-3.2-1b}" --contexts "$3" \
    --methods "$4" --hosts "${HOSTS:-4}" --decode "${DECODE:-32}" --timeout 180 --out-dir "$out/star-model/$1" \
    --backend webgpu --storage "${STORAGE:-f16}" 2> "$out/star-model/$1/log.txt"
}
part star "$(window "${STAR_SECONDS:-250}")" "${LARGE_CONTEXTS:-32K,64K,128K}" star
stamp star $?
part ring "$(window 400)" "${RING_CONTEXTS:-32K,128K}" ring
stamp ring $?

{
  cat "$out/gpu.txt"
  echo "== accuracy (passkey-2k, YaRN x16, seed 2): $(cat "$out/accuracy-exit.txt")"
  for len in ${ACC_LENGTHS//,/ }; do echo "-- $len"; grep -E "^\|" "$out/accuracy/$len/report.md" 2>/dev/null | head -n 12 ||
    cat "$out/accuracy/$len.log"; done
  echo
  echo "== star across ${HOSTS:-4} hosts: $(cat "$out/star-exit.txt")"
  cat "$out/star-model/star/star-model.md" 2>/dev/null || tail -n 15 "$out/star-model/star/log.txt"
  echo
  echo "== ring across ${HOSTS:-4} hosts: $(cat "$out/ring-exit.txt")"
  cat "$out/star-model/ring/star-model.md" 2>/dev/null || tail -n 15 "$out/star-model/ring/log.txt"
  echo
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
