#!/usr/bin/env bash
# Issue 18 item 4's measurement in one device call (H200): the quantised-kernel tests on the GPU (there the
# tensor-core tiles, which lavapipe lacks, dequantise Q4_0/Q4_K/Q5_K/Q6_K as they stage), then `bench model`
# of a random Llama-3.2-1B-shaped model, f16 storage, flash, contexts 4K and 32K, for f16, Q4_K and Q6_K
# matrices (all of them, the tied embedding / output head included): decode tok/s and the weights' bytes on
# the GPU. Results: $OUT/quant-h200/summary.txt, and quant.tar.gz holding everything (test.log, <weights>/model.json
# and model.md, the logs): two files, as a device call brings back at most 8. <= 6 minutes.
#   source .device/prelude.sh && bash scripts/bench-quant-h200.sh
# A dry run on lavapipe at a tiny size:
#   CONTEXTS=256,512 DECODE=4 SHAPE_ARGS="--shape tiny --hidden 256 --intermediate 512 --heads 4 --head-dim 64" \
#     bash scripts/bench-quant-h200.sh
set -uo pipefail
dest="${OUT:-bench-out}/quant-h200"
mkdir -p "$dest"
out=$(mktemp -d)
trap 'tar -C "$out" -czf "$dest/quant.tar.gz" .; cp "$out/summary.txt" "$dest/" 2>/dev/null' EXIT
start=$(date +%s)
deadline=$((start + ${TOTAL_SECONDS:-345}))
left() { echo $((deadline - $(date +%s))); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
contexts=${CONTEXTS:-4K,32K}
decode=${DECODE:-48}
read -r -a shape <<<"${SHAPE_ARGS:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
timeout "$(cap 60)" node --test --test-concurrency=1 dist/test/quant-kernels.test.js > "$out/test.log" 2>&1
echo "test: $(grep -E '^# (pass|fail)' "$out/test.log" | tr '\n' ' ')$(grep -c 'SKIPPED' "$out/test.log") skip lines," \
  "$(left) s left" | tee "$out/test-summary.txt"
grep -E '^# (tc-|SKIPPED tc-128x64x32)|not ok|error:' "$out/test.log" | head -n 40 > "$out/test-tc.txt"
# Q4_K first (the target's numerator), then f16, then Q6_K; each process builds its own random model.
for w in q4_k f16 q6_k; do
  budget=$(cap 110)
  [ "$budget" -gt 30 ] || { echo "$w: no time left" | tee -a "$out/skipped.txt"; continue; }
  weights=(--weights "$w")
  [ "$w" = f16 ] && weights=() # f32 values converted to f16 on upload: what bench-model-h200.sh measures
  timeout "$budget" node dist/src/cli/main.js bench model --backend webgpu --storage f16 "${weights[@]}" \
    --contexts "$contexts" "${shape[@]}" --decode "$decode" --chunk 512 --budget-seconds "$((budget - 25))" \
    --method flash --out-dir "$out/$w" 2>&1 | grep -v -e "artificially reduced" -e "deprecated" > "$out/$w.log"
  echo "$w: $(tail -n 1 "$out/$w.log" | cut -c1-160); $(left) s left"
done
node -e '
const fs = require("fs");
const dir = process.argv[1];
const rows = [];
for (const w of ["f16", "q4_k", "q6_k"]) {
  try { rows.push(...JSON.parse(fs.readFileSync(`${dir}/${w}/model.json`, "utf8")).rows.map((r) => ({ ...r, run: w }))); }
  catch (e) { console.log(`${w}: no model.json (${e.message.split("\n")[0]})`); }
}
const gib = (b) => (b ? (b / 2 ** 20).toFixed(1) + " MiB" : "-");
const lines = ["weights | context | prefill tok/s | decode tok/s | weight bytes on GPU | peak | status"];
for (const r of rows)
  lines.push([r.run, r.context, (r.prefillTokensPerSecond ?? 0).toFixed(0), (r.decodeTokensPerSecond ?? 0).toFixed(1),
    gib(r.weightBytes), gib(r.peakBytes), r.status + (r.note ? " " + r.note : "")].join(" | "));
for (const ctx of [...new Set(rows.map((r) => r.context))]) {
  const f16 = rows.find((r) => r.run === "f16" && r.context === ctx && r.status === "ok");
  for (const q of ["q4_k", "q6_k"]) {
    const x = rows.find((r) => r.run === q && r.context === ctx && r.status === "ok");
    if (f16 && x) lines.push(`${q} / f16 at ${ctx}: decode ${(x.decodeTokensPerSecond / f16.decodeTokensPerSecond).toFixed(2)}x, ` +
      `weight bytes ${(x.weightBytes / f16.weightBytes).toFixed(3)}x`);
  }
}
const kernels = [...new Set(rows.flatMap((r) => (r.matmul ?? []).map((m) => m.replace(/(\)):[^[]*\[/, "$1 ["))))];
lines.push("", "matmul kernels that ran:", ...kernels);
const test = ["test-summary.txt", "test-tc.txt"].map((f) => { try { return fs.readFileSync(`${dir}/${f}`, "utf8"); } catch { return ""; } });
lines.push("", ...test);
fs.writeFileSync(`${dir}/summary.txt`, lines.join("\n") + "\n");
console.log(lines.join("\n"));
' "$out"
echo "bench-quant-h200: $(($(date +%s) - start)) s; results in $dest (summary.txt, quant.tar.gz)"
