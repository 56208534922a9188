#!/usr/bin/env bash
# CCA-Attention on the GPU machine, in one device call (issue 5); results under $OUT/cca/:
#   source .device/prelude.sh && bash scripts/bench-cca-h100.sh      (carry .device; dist/ built)
# 1. check.txt: the CCA tests on this device (test/cca.test.ts: both pass-2 kernels, the subgroup-matrix one
#    where the device has it, against float64; test/cca-gpu-layer.test.ts: the resident layer against the
#    CPU cache); when they fail, the subgroup-matrix kernel is left out of the sweep.
# 2. prefill/: causal f16, 32 heads, head dim 128, 8K..128K: flash (auto) against cca (auto, and portable),
#    with CCA's KV cache against dense in each row's note (`longctx bench attention`).
# 3. decode/: one layer's decode step over N cached tokens, CCA's resident layer against flash over all N keys,
#    per-token ms and the cache against dense (`longctx bench resident`).
# Targets at 128K (g 16, w 1024): prefill >= 5x faster than flash; KV cache <= 7% of dense.
# Tiny run on any machine: LENGTHS=512,1K DECODE_LENGTHS=512,1024 HEADS=2 bash scripts/bench-cca-h100.sh
set -uo pipefail
out="${OUT:-bench-out}/cca"
mkdir -p "$out"
lengths="${LENGTHS:-8K,16K,32K,64K,128K}"
heads="${HEADS:-32}" group="${GROUP:-16}" window="${WINDOW:-1024}"
cca="cca:group=$group,window=$window"
quiet() { grep -v "artificially reduced"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"

# 1. Correctness on this device.
CI=true node --test --test-concurrency=1 dist/test/cca.test.js dist/test/cca-gpu-layer.test.js 2>&1 | quiet \
  > "$out/check.txt"
check=$?
grep -E "^# (pass|fail)" "$out/check.txt"
methods=(--method flash --method "$cca,variant=portable")
if [ "$check" -eq 0 ]; then methods+=(--method "$cca"); else echo "CCA check failed: subgroup-matrix left out"; fi

# 2. Prefill sweep.
node dist/src/cli/main.js bench attention --backend webgpu --lengths "$lengths" --heads "$heads" --head-dim 128 \
  --dtypes f16 --reps 3 --warmup 1 --budget-seconds 40 --out-dir "$out/prefill" \
  --title "CCA prefill against flash, causal, $heads heads, head dim 128" "${methods[@]}" 2>&1 | quiet

# 3. Decode: one layer, resident on the GPU.
node dist/src/cli/main.js bench resident --methods flash,cca --contexts "${DECODE_LENGTHS:-8K,32K,128K}" \
  --heads "$heads" --kv-heads "$heads" --head-dim 128 --group "$group" --window "$window" --decode 32 \
  --out-dir "$out/decode" 2>&1 | quiet | tee "$out/decode.txt"

# Prefill speed-up at each length: flash ms / cca ms.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1] + "/prefill/attention.json", "utf8")).rows.filter((x) => x.status === "ok");
for (const x of r.filter((x) => x.method.startsWith("cca"))) {
  const f = r.find((y) => y.method === "flash" && y.seqLen === x.seqLen);
  console.log(`${x.method} (${x.variant}) N=${x.seqLen}: ${x.ms.toFixed(2)} ms, flash ${f ? f.ms.toFixed(2) : "-"} ms, speed-up ${f ? (f.ms / x.ms).toFixed(2) + "x" : "-"}; ${x.note ?? ""}`);
}' "$out" | tee "$out/summary.txt"
