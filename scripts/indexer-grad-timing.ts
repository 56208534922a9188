// Times one sequence's indexer loss + gradient (train/indexer-grad.ts on the CPU in float64, and
// train/indexer-grad-gpu.ts, the whole sequence on WebGPU) on random inputs shaped like passkey-2k's layers
// (hidden 256, head dim 32), the top-k mass measured as the trainer does, and the target p as the trainer
// computes it: `--target attention` (default) from random frozen-layer q and k of passkey-2k's 8 query and 2
// KV heads (the CPU in float64, train/attention-target.ts; WebGPU on the GPU), or `uniform`, a cheap one, so
// that only the gradient is timed. Prints a markdown table (ms per call, speedup) and JSON.
//   node dist/scripts/indexer-grad-timing.js [--lengths 512,2048,8192] [--cpu-max 2048] [--heads 4] [--dim 64]
//        [--chunk 256] [--topk 256] [--repeats 3] [--target attention|uniform] [--backend both|cpu|webgpu]
import { acquireDevice } from '../src/runtime/device.js';
import { attentionTarget } from '../src/train/attention-target.js';
import { indexerLossGrad, type IndexerSequence } from '../src/train/indexer-grad.js';
import { GpuIndexerGradient } from '../src/train/indexer-grad-gpu.js';
import { indexerGeometry, initIndexerParams, paramLayout, seededNormal } from '../src/train/indexer-params.js';
import type { ModelConfig } from '../src/model/types.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const lengths = arg('lengths', '512,2048,8192').split(',').map(Number);
const cpuMax = Number(arg('cpu-max', '2048'));
/** Which backends to time: both (default), or one alone (for a CPU profile of either). */
const backend = arg('backend', 'both');
const targetKind = arg('target', 'attention');
const [Hq, Hkv, D] = [8, 2, 32];
const [heads, dim, chunk, topk, repeats] = ['heads', 'dim', 'chunk', 'topk', 'repeats'].map((n, i) =>
  Number(arg(n, ['4', '64', '256', '256', '3'][i])),
);
const config = {
  hiddenSize: 256,
  headDim: 32,
  ropeTheta: 10000,
  rope: { kind: 'none' },
  ropeLayout: 'half',
} as unknown as ModelConfig;
const g = indexerGeometry(config, heads, dim);
const params = initIndexerParams(g, 1);
const device = await acquireDevice('webgpu');
const gpu = new GpuIndexerGradient(device.gpu!);
const rows: Array<Record<string, number | string>> = [];
for (const L of lengths) {
  const { normal } = seededNormal(L);
  const h = Float32Array.from({ length: L * g.hidden }, () => normal());
  const uniformTarget = (t0: number, t1: number) => {
    const p = new Float64Array((t1 - t0) * L);
    for (let t = t0; t < t1; t++) p.fill(1 / (t + 1), (t - t0) * L, (t - t0) * L + t + 1);
    return p;
  };
  const q = Float32Array.from({ length: Hq * L * D }, () => normal());
  const k = Float32Array.from({ length: Hkv * L * D }, () => normal());
  const seq: IndexerSequence =
    targetKind === 'uniform'
      ? { h, L, chunk, topk, target: uniformTarget }
      : {
          h,
          L,
          chunk,
          topk,
          target: attentionTarget({ q, k, h }, L, Hq, Hkv, D),
          attention: { q, k, heads: Hq, kvHeads: Hkv, headDim: D },
        };
  const time = async (f: () => Promise<unknown> | unknown, n: number) => {
    await f(); // warm (pipelines, buffers)
    const t = performance.now();
    for (let i = 0; i < n; i++) await f();
    return (performance.now() - t) / n;
  };
  const grad = new Float64Array(paramLayout(g).size);
  const gpuMs = backend !== 'cpu' ? await time(() => gpu.lossGrad(g, params, seq, grad), repeats) : Number.NaN;
  const cpuMs =
    backend !== 'webgpu' && L <= cpuMax ? await time(() => indexerLossGrad(g, params, seq, grad), 1) : Number.NaN;
  rows.push({ L, heads, dim, chunk, topk, target: targetKind, cpuMs, gpuMs, speedup: cpuMs / gpuMs });
  process.stderr.write(`L ${L}: cpu ${cpuMs.toFixed(1)} ms, webgpu ${gpuMs.toFixed(1)} ms\n`);
}
console.log(
  `indexer loss + gradient per sequence, ${device.name}; H_I ${heads}, D_I ${dim}, hidden 256, target ${targetKind}` +
    `${targetKind === 'attention' ? ` (${Hq} query / ${Hkv} KV heads of ${D})` : ''}\n`,
);
console.log('| L | CPU float64 (ms) | WebGPU f32 (ms) | speedup |\n| --- | --- | --- | --- |');
// A backend skipped at a length (the CPU past cpuMax) is NaN here and null in the JSON: a dash in the table.
const ms = (v: number | string, suffix = '') =>
  typeof v !== 'number' || !Number.isFinite(v) ? '—' : `${v.toFixed(1)}${suffix}`;
for (const r of rows) console.log(`| ${r.L} | ${ms(r.cpuMs)} | ${ms(r.gpuMs)} | ${ms(r.speedup, 'x')} |`);
console.log(JSON.stringify(rows));
gpu.destroy();
device.destroy();
