#!/usr/bin/env bash
# One device call of at most CALL_SECONDS (default 560, prelude included) for issue 12's CCA tc2 kernel and the
# opt-in Dawn toggles:
#  1. the tensor-core tests natively (test/nan-tc: every flash and CCA version; cca, cca-gpu-layer, dawn-toggles),
#     within TEST_SECONDS (150): $OUT/tests/;
#  2. `bench attention`, f16, 32 heads (8 KV), D 128, at ATT_LENGTHS (16K,64K,128K): flash tc2 beside CCA pass 2 on
#     v1 (subgroup-matrix) and on tc2-128x32, within ATT_SECONDS (90): $OUT/attention/;
#  3. `bench model` at 128K, flash and cca, decode 32, within MODEL_SECONDS (170): $OUT/model/ (CCA's prefill against
#     flash's: run 6 had 1.79x with v1);
#  4. prefill at 16K, chunk 2048, flash, with Dawn's defaults and with LONGCTX_DAWN_TOGGLES=disable_robustness, in
#     what is left: $OUT/prefill/{default,no-robustness}/.
#   bash scripts/pack-device.sh
#   source .device/prelude.sh && bash scripts/h200-call-cca-tc.sh
# Dry run (lavapipe): OUT=/tmp/dry-cca ATT_LENGTHS=1K MODEL_CONTEXTS=1K PREFILL_CONTEXT=1K CCA_VARIANT=portable
#   SHAPE_ARGS="--shape tiny --heads 8 --kv-heads 2 --head-dim 64" TESTS=dawn-toggles bash scripts/h200-call-cca-tc.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200-call-lib.sh
source scripts/h200-call-lib.sh
out="${OUT:-h200-call-out}"
mkdir -p "$out/tests" "$out/attention" "$out/model" "$out/prefill"
call_deadline "${CALL_SECONDS:-560}"
[ -f dist/src/cli/main.js ] || npx tsc -p . || exit 1
read -r -a shape <<< "${SHAPE_ARGS:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
quiet() { grep -v -e 'artificially reduced' -e deprecated; }
export -f quiet

tests() {
  local t
  for t in ${TESTS:-nan-tc cca cca-gpu-layer dawn-toggles}; do
    XDG_RUNTIME_DIR=/tmp LONGCTX_CHECK_PIPELINE_KEYS=1 node --test --test-concurrency=1 "dist/test/$t.test.js" 2>&1 |
      quiet > "$out/tests/$t.txt"
    echo "$t: $(grep -E '^# (pass|fail|skipped)' "$out/tests/$t.txt" | tr '\n' ' ')" >> "$out/tests/summary.txt"
  done
}
within "$(window "${TEST_SECONDS:-150}")" tests
stamp tests $?

variant="${CCA_VARIANT:-tc2-128x32}"
w=$(window "${ATT_SECONDS:-90}")
within "$w" bash -c "node dist/src/cli/main.js bench attention --backend webgpu --dtypes f16 --heads ${ATT_HEADS:-32} \
  --kv-heads ${ATT_KV_HEADS:-8} --head-dim ${ATT_HEAD_DIM:-128} --lengths '${ATT_LENGTHS:-16K,64K,128K}' --reps 2 \
  --method flash --method cca:group=16,window=1024,variant=${CCA_V1:-subgroup-matrix} \
  --method cca:group=16,window=1024,variant=$variant --budget-seconds 20 --out-dir '$out/attention' 2>&1 | quiet \
  > '$out/attention/run.log'"
stamp attention $?

w=$(window "${MODEL_SECONDS:-170}")
within "$w" bash -c "node dist/src/cli/main.js bench model --backend webgpu --storage f16 ${shape[*]} \
  --contexts '${MODEL_CONTEXTS:-128K}' --decode 32 --chunk 512 --budget-seconds $(( w - 10 )) --method flash \
  --method cca:group=16,window=1024 --out-dir '$out/model' 2>&1 | quiet > '$out/model/run.log'"
stamp model $?

prefill() { # name, then the environment's toggles
  local w
  w=$(window "${PREFILL_SECONDS:-75}")
  [ "$w" -gt 30 ] || return 124
  within "$w" env LONGCTX_DAWN_TOGGLES="$2" node dist/src/cli/main.js bench model --backend webgpu --storage f16 \
    "${shape[@]}" --contexts "${PREFILL_CONTEXT:-16K}" --decode 16 --chunk 2048 --budget-seconds $(( w - 10 )) \
    --method flash --out-dir "$out/prefill/$1" > "$out/prefill/$1.log" 2>&1
}
prefill default ""
prefill no-robustness disable_robustness
stamp prefill $?

{
  cat "$out/gpu.txt"
  echo "== tests: $(cat "$out/tests-exit.txt")"
  cat "$out/tests/summary.txt" 2>/dev/null
  grep -h -E "SKIPPED|^not ok" "$out"/tests/*.txt | sort | uniq -c | head -n 30
  echo "== attention: $(cat "$out/attention-exit.txt")"
  grep -E "^\|" "$out/attention/"*.md 2>/dev/null | head -n 20 || tail -n 10 "$out/attention/run.log"
  echo "== model: $(cat "$out/model-exit.txt")"
  grep -E "^\| longctx|^- " "$out/model/model.md" 2>/dev/null | head -n 20 || tail -n 5 "$out/model/run.log"
  echo "== prefill: $(cat "$out/prefill-exit.txt")"
  for p in default no-robustness; do echo "-- $p"; grep -E "^\| longctx|^## Model" "$out/prefill/$p/model.md" 2>/dev/null |
    head -n 4 || tail -n 3 "$out/prefill/$p.log"; done
  echo "call: $(( $(date +%s) - started )) s so far"
} > "$out/summary.txt"
cat "$out/summary.txt"
pack_results "$out"
