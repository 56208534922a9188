#!/usr/bin/env bash
# CCA-Attention on the GPU machine, in one device call (issue 5); results under $OUT/cca/:
#   source .device/prelude.sh && bash scripts/bench-cca-h100.sh      (carry .device; dist/ built)
# 1. check.txt: both pass-2 kernels (portable, subgroup-matrix when the device has it) against the CPU twin
#    on small odd shapes; a failing subgroup-matrix kernel is left out of the sweep.
# 2. prefill/: causal f16, 32 heads, head dim 128, 8K..128K: flash (auto) against cca (auto, and portable).
# 3. decode.json / decode.md: one new token's attention over N cached tokens (flash over all N keys against
#    CCA over its cores + raw tail), per-token ms, and KV-cache bytes against dense.
# Targets at 128K (g 16, w 1024): prefill >= 5x faster than flash; KV cache <= 7% of dense.
# Tiny run on any machine: LENGTHS=512,1K DECODE_LENGTHS=512,1024 HEADS=2 bash scripts/bench-cca-h100.sh
set -uo pipefail
out="${OUT:-bench-out}/cca"
mkdir -p "$out"
lengths="${LENGTHS:-8K,16K,32K,64K,128K}"
export CCA_DECODE_LENGTHS="${DECODE_LENGTHS:-8192,16384,32768,65536,131072}"
export CCA_HEADS="${HEADS:-32}" CCA_GROUP="${GROUP:-16}" CCA_WINDOW="${WINDOW:-1024}"
cca="cca:group=$CCA_GROUP,window=$CCA_WINDOW"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"

# 1. Correctness on this device.
cat > "$out/check.mjs" <<'EOF'
import { pathToFileURL } from 'node:url';
const lib = (p) => import(pathToFileURL(`${process.cwd()}/dist/src/${p}`).href);
const { acquireDevice, cpuDevice } = await lib('runtime/device.js');
const { ccaAttention } = await lib('attention/cca.js');
const { randomNormal } = await lib('tensor.js');
const { maxAbsDiff } = await lib('reference/attention.js');
const gpu = await acquireDevice('webgpu');
const variants = ['portable', ...(gpu.gpu.features.subgroupMatrixF16 ? ['subgroup-matrix'] : [])];
let sgmatOk = variants.includes('subgroup-matrix');
for (const [H, Hkv, N, D, g, w] of [[8, 2, 1000, 128, 16, 100], [4, 4, 777, 64, 5, 33], [8, 2, 1023, 128, 16, 1024], [2, 1, 300, 128, 16, 1]]) {
  const q = randomNormal([H, N, D], 1, 'f16'), k = randomNormal([Hkv, N, D], 2, 'f16'), v = randomNormal([Hkv, N, D], 3, 'f16');
  const want = await ccaAttention(cpuDevice, q, k, v, { group: g, window: w });
  for (const variant of variants) {
    const got = await ccaAttention(gpu, q, k, v, { group: g, window: w, variant });
    const eo = maxAbsDiff(got.o, want.o), el = maxAbsDiff(got.lse, want.lse);
    const ok = eo < 2e-2 && el < 2e-2; // f16 inputs and f16 P against the f64-arithmetic twin
    if (!ok && variant === 'subgroup-matrix') sgmatOk = false;
    console.log(`${variant} H=${H}/${Hkv} N=${N} D=${D} g=${g} w=${w}: max |dO| ${eo.toExponential(2)}, max |dLSE| ${el.toExponential(2)} ${ok ? 'ok' : 'FAIL'}`);
  }
}
console.log(`subgroup-matrix: ${sgmatOk ? 'ok' : 'not used'}`);
gpu.destroy();
EOF
node "$out/check.mjs" 2>&1 | grep -v "artificially reduced" | tee "$out/check.txt"
methods=(--method flash --method "$cca,variant=portable")
if grep -q "^subgroup-matrix: ok" "$out/check.txt"; then methods+=(--method "$cca"); fi

# 2. Prefill sweep.
node dist/src/cli/main.js bench attention --backend webgpu --lengths "$lengths" --heads "$CCA_HEADS" --head-dim 128 --dtypes f16 \
  --reps 3 --warmup 1 --budget-seconds 40 --out-dir "$out/prefill" --title "CCA prefill against flash, causal, $CCA_HEADS heads, head dim 128" \
  "${methods[@]}" 2>&1 | grep -v "artificially reduced"

# 3. Decode: one query row over resident buffers.
cat > "$out/decode.mjs" <<'EOF'
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const lib = (p) => import(pathToFileURL(`${process.cwd()}/dist/src/${p}`).href);
const { acquireDevice } = await lib('runtime/device.js');
const { flashAttentionGpu } = await lib('attention/flash.js');
const { ccaAttentionGpu, ccaCacheBytes, chooseCcaVariant, coresSeen } = await lib('attention/cca.js');
const { randomGpuBuffer } = await lib('bench/gpu-fill.js');
const { kvHeadsPerChunk } = await lib('attention/gpu-chunks.js');
const device = await acquireDevice('webgpu');
const gpu = device.gpu;
const H = Number(process.env.CCA_HEADS), D = 128, g = Number(process.env.CCA_GROUP), w = Number(process.env.CCA_WINDOW);
const rows = [];
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
async function timeIt(run, reps = 15) {
  for (let i = 0; i < 3; i++) await run();
  await gpu.idle();
  const t = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); await run(); await gpu.idle(); t.push(performance.now() - t0); }
  return median(t);
}
for (const N of process.env.CCA_DECODE_LENGTHS.split(',').map(Number)) {
  const shape = (keys) => ({ heads: H, kvHeads: H, queries: 1, keys, headDim: D, causal: true, scale: 1 / Math.sqrt(D) });
  const owned = [];
  const buf = async (n, seed, label) => { const b = await randomGpuBuffer(gpu, n, true, seed, label); owned.push(b); return b; };
  const out = async (n, label) => { const b = await gpu.createBuffer(n, label); owned.push(b); return b; };
  try {
    if (kvHeadsPerChunk(shape(N), 2, gpu.maxBindingBytes) < H) throw new Error(`N=${N}: K does not fit one binding; shorten`);
    const q = await buf(H * D, 1, 'q'), o = await out(H * D * 4, 'o'), lse = await out(H * 4, 'lse');
    // Flash: the new token's query over all N cached keys.
    const flashIn = { q, k: await buf(H * N * D, 2, 'k'), v: await buf(H * N * D, 3, 'v'), o, lse, shape: shape(N), dtype: 'f16' };
    const flashMs = await timeIt(() => flashAttentionGpu(gpu, flashIn, 'auto'));
    gpu.release(flashIn.k); gpu.release(flashIn.v);
    // CCA: the cache's cores (those the query sees) and its raw tail [c*g, N-1].
    const c = coresSeen(N - 1, g, w), R = N - c * g;
    const cores = { k: await buf(H * Math.max(1, c) * D, 4, 'core k'), v: await buf(H * Math.max(1, c) * D, 5, 'core v') };
    const ccaIn = { q, k: await buf(H * R * D, 6, 'raw k'), v: await buf(H * R * D, 7, 'raw v'), o, lse, shape: shape(R), dtype: 'f16' };
    const plan = { group: g, window: w, queryStart: N - 1, rawStart: c * g, cores: c, poolFirst: 0, poolCount: 0 };
    const variant = chooseCcaVariant(gpu, D, 'f16', process.env.CCA_VARIANT ?? 'portable');
    const ccaMs = await timeIt(() => ccaAttentionGpu(gpu, ccaIn, { ...plan, variant }, cores));
    const kv = ccaCacheBytes(N, H, D, 'f16', { group: g, window: w }), dense = 2 * N * H * D * 2;
    rows.push({ N, flashMs, ccaMs, ccaVariant: variant, speedup: flashMs / ccaMs, ccaKvBytes: kv, denseKvBytes: dense, kvPercent: (100 * kv) / dense });
    console.log(JSON.stringify(rows.at(-1)));
  } catch (e) {
    console.log(`N=${N}: ${e.message}`);
  } finally {
    for (const b of owned) gpu.release(b);
    await gpu.flushDestroyed();
  }
}
writeFileSync(`${process.env.CCA_OUT}/decode.json`, JSON.stringify({ device: gpu.adapterName, heads: H, headDim: D, group: g, window: w, rows }, null, 2) + '\n');
const md = ['| N | flash ms/token | CCA ms/token | speed-up | CCA KV cache | dense KV cache | CCA / dense |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.N} | ${r.flashMs.toFixed(3)} | ${r.ccaMs.toFixed(3)} | ${r.speedup.toFixed(1)}x | ${(r.ccaKvBytes / 2 ** 20).toFixed(1)} MiB | ${(r.denseKvBytes / 2 ** 20).toFixed(1)} MiB | ${r.kvPercent.toFixed(2)}% |`)];
writeFileSync(`${process.env.CCA_OUT}/decode.md`, md.join('\n') + '\n');
console.log(md.join('\n'));
device.destroy();
EOF
CCA_OUT="$out" CCA_VARIANT="$(grep -q '^subgroup-matrix: ok' "$out/check.txt" && echo auto || echo portable)" \
  node "$out/decode.mjs" 2>&1 | grep -v "artificially reduced" | tee "$out/decode.txt"

# Prefill speed-up at each length: flash ms / cca ms.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1] + "/prefill/attention.json", "utf8")).rows.filter((x) => x.status === "ok");
for (const x of r.filter((x) => x.method.startsWith("cca"))) {
  const f = r.find((y) => y.method === "flash" && y.seqLen === x.seqLen);
  console.log(`${x.method} (${x.variant}) N=${x.seqLen}: ${x.ms.toFixed(2)} ms, flash ${f ? f.ms.toFixed(2) : "-"} ms, speed-up ${f ? (f.ms / x.ms).toFixed(2) + "x" : "-"}; ${x.note ?? ""}`);
}' "$out" | tee "$out/summary.txt"
