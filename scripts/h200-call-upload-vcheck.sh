#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 570, prelude included) for issue 18's session loads and issue
# 12's hoisted V check:
#  1. scripts/upload-sweep.ts: 4 GiB host -> GPU in each LONGCTX_UPLOAD mode (write, small, staging): $OUT/upload/;
#  2. flash tc2 with the hoisted V check (`bench kernels`, pre-pass + both kernels timed) at 16K/64K D 128 and 16K D 64,
#     PyTorch SDPA flash beside it in the same call; `bench attention` with vcheck=hoisted and vcheck=tile side by
#     side (32 heads, 8 KV heads, D 128): $OUT/vcheck/;
#  3. the tensor-core tests natively: nan-tc (every flash and CCA version, the hoisted parts), v-finite: $OUT/tests/;
#  4. session-bench at 128K (1B shape, f16): flash, CCA and DSA, which now restore from their caches, with the upload
#     mode the sweep found best: $OUT/session/;
#  5. the remap test split towards 100 cases per length at 4K-32K and 50 at 64K, in what is left: $OUT/eval/.
# Everything under $OUT ends in $OUT/results.tar.gz, beside $OUT/summary.txt.
#   bash scripts/pack-device.sh && source .device/prelude.sh && bash scripts/h200-call-upload-vcheck.sh
# Dry run here (lavapipe): OUT=/tmp/dry-uv UPLOAD_MIB=256 KLENGTHS=1K VERSIONS=tc2-32x64 TESTS=v-finite SHAPE=tiny
#   SESSION_CONTEXT=1K EVAL_LENGTHS=2K EVAL_CASES=2 STORAGE=f32 NO_TORCH=1 bash scripts/h200-call-upload-vcheck.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/upload" "$out/vcheck" "$out/tests" "$out/session" "$out/eval"
call_deadline "${CALL_SECONDS:-570}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
quiet() { grep -v -e 'artificially reduced' -e deprecated; }
export -f quiet

# 1. Upload modes.
within "$(window 60)" node dist/scripts/upload-sweep.js --mib "${UPLOAD_MIB:-4096}" > "$out/upload/sweep.md" \
  2> "$out/upload/sweep.err"
stamp upload $?
best=$(sed -n 's/^best: //p' "$out/upload/sweep.md")
best="${best:-write}"

# 2. The hoisted V check, with PyTorch in the same call.
vcheck() {
  if [ -z "${NO_TORCH:-}" ]; then
    python3 scripts/torch_sdpa_bench.py --lengths 16384,65536 --head-dim 128 --out "$out/vcheck/torch-d128.json" \
      > "$out/vcheck/torch-d128.log" 2>&1
    python3 scripts/torch_sdpa_bench.py --lengths 16384 --head-dim 64 --out "$out/vcheck/torch-d64.json" \
      > "$out/vcheck/torch-d64.log" 2>&1
  fi
  node dist/src/cli/main.js bench kernels --families flash --lengths "${KLENGTHS:-16K,64K}" --seconds 0.3 \
    --versions "${VERSIONS:-tc2-128x32,tc2-64x32}" --out-dir "$out/vcheck/kernels" 2>&1 | quiet > "$out/vcheck/kernels.log"
  local d
  for d in 128 64; do
    node dist/src/cli/main.js bench attention --backend webgpu --dtypes f16 --heads 32 --kv-heads 8 --head-dim "$d" \
      --lengths "${KLENGTHS:-16K,64K}" --method flash:variant=tc2 --method flash:variant=tc2,vcheck=tile --reps 5 \
      --warmup 2 --out-dir "$out/vcheck/attention-d$d" 2>&1 | quiet > "$out/vcheck/attention-d$d.log"
  done
}
within "$(window 110)" vcheck
stamp vcheck $?

# 3. Native tensor-core tests.
tests() {
  local t
  for t in ${TESTS:-v-finite nan-tc}; do
    XDG_RUNTIME_DIR=/tmp LONGCTX_CHECK_PIPELINE_KEYS=1 node --test --test-concurrency=1 "dist/test/$t.test.js" 2>&1 |
      quiet > "$out/tests/$t.txt"
    echo "$t: $(grep -E '^# (pass|fail|skipped)' "$out/tests/$t.txt" | tr '\n' ' ')" >> "$out/tests/summary.txt"
  done
}
within "$(window 150)" tests
stamp tests $?

# 4. Saved sessions at 128K with the best upload mode.
within "$(window 200)" env LONGCTX_UPLOAD="$best" node dist/src/cli/session-bench.js --random "${SHAPE:-1b}" \
  --backend webgpu --storage "${STORAGE:-f16}" --context "${SESSION_CONTEXT:-128K}" --attention flash \
  --attention cca:group=16,window=1024 --attention dsa --json "$out/session/session.json" \
  > "$out/session/session.md" 2> "$out/session/session.err"
stamp session $?

# 5. The remap test split, resumed from docs/eval-h200-remap/ (this session's first call took it to 94 a length).
cp docs/eval-h200-remap/results.jsonl "$out/eval/results.jsonl"
budget=$(( $(window 400) - 25 ))
[ "$budget" -gt 20 ] && within "$(( budget + 20 ))" node dist/src/cli/main.js eval \
  --model "${PASSKEY_2K:-test/fixtures/passkey-2k}" --tasks passkey --lengths "${EVAL_LENGTHS:-4K,8K,16K,32K,64K}" \
  --cases-per "${EVAL_CASES:-100}" --seed 2 --backend webgpu --storage "${STORAGE:-f16}" \
  --positions remap:window=512,topk=512 --budget-seconds "$budget" --title "passkey (WebGPU)" --out "$out/eval" 2>&1 |
  quiet | tail -n 30 > "$out/eval/log.txt"
stamp eval $?

{
  cat "$out/gpu.txt"
  echo "== upload: $(cat "$out/upload-exit.txt")"; cat "$out/upload/sweep.md"; tail -n 3 "$out/upload/sweep.err"
  echo "== vcheck: $(cat "$out/vcheck-exit.txt")"
  grep -E "tc2|sgmat|torch|TFLOP" "$out/vcheck/kernels.log" | tail -n 12
  for d in 128 64; do grep -E "^\|" "$out/vcheck/attention-d$d/"*.md 2>/dev/null | head -n 8; done
  tail -n 4 "$out/vcheck/torch-d128.log" "$out/vcheck/torch-d64.log" 2>/dev/null
  echo "== tests: $(cat "$out/tests-exit.txt")"; cat "$out/tests/summary.txt"
  echo "== session ($best): $(cat "$out/session-exit.txt")"
  grep -E "^\|" "$out/session/session.md" || tail -n 5 "$out/session/session.err"
  echo "== eval: $(cat "$out/eval-exit.txt" 2>/dev/null)"
  grep -E "^\|" "$out/eval/report.md" 2>/dev/null | sed -n 3,6p
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
