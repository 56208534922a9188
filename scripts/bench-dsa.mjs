// DSA sweep on WebGPU: prefill and decode per length, indexer / selection / attention apart, against flash
// (prefill) and dense decoding (flash with one query). Writes dsa.json and dsa.md into --out.
//   node scripts/bench-dsa.mjs --lengths 8K,16K,...,128K --out DIR [--heads 32 --kv-heads 8 --head-dim 128]
//        [--topk 2048] [--precision int8|float] [--reps 5] [--budget-seconds S] [--compare-old]
// --compare-old also times the previous kernels (tiles sparse attention, selection without subgroup-aggregated
// atomics) in the same run: the table then shows old -> new.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { acquireDevice } from '../dist/src/runtime/device.js';
import { timeDsaCacheDecodeGpu, timeDsaGpu, timeFlashGpu } from '../dist/src/bench/dsa-bench.js';

const { values: v } = parseArgs({
  options: {
    lengths: { type: 'string', default: '8K,16K,32K,64K,128K' },
    out: { type: 'string', default: 'bench-out/dsa' },
    heads: { type: 'string', default: '32' },
    'kv-heads': { type: 'string', default: '8' },
    'head-dim': { type: 'string', default: '128' },
    topk: { type: 'string', default: '2048' },
    precision: { type: 'string', default: 'int8' },
    reps: { type: 'string', default: '5' },
    'budget-seconds': { type: 'string', default: '60' },
    'compare-old': { type: 'boolean', default: false },
    'skip-flash-prefill-above': { type: 'string', default: '1000000000' },
  },
});
const lengths = v.lengths.split(',').map((s) => Number(s.replace(/[kK]$/, '')) * (/[kK]$/.test(s) ? 1024 : 1));
const reps = Number(v.reps);
const device = await acquireDevice('webgpu');
const gpu = device.gpu;
const rows = [];
const fmt = (x) => (x == null ? '—' : x < 10 ? x.toFixed(3) : x.toFixed(1));
let flashPrefillSkipped = false;
for (const N of lengths) {
  for (const mode of ['prefill', 'decode']) {
    const c = {
      seqLen: N,
      queries: mode === 'prefill' ? N : 1,
      heads: Number(v.heads),
      kvHeads: Number(v['kv-heads']),
      headDim: Number(v['head-dim']),
      dtype: 'f16',
      topk: Number(v.topk),
      indexHeads: 4,
      indexDim: 64,
      precision: v.precision,
      compareOld: v['compare-old'],
    };
    const row = {
      mode,
      seqLen: N,
      topk: c.topk,
      precision: c.precision,
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.headDim,
    };
    try {
      const t0 = performance.now();
      Object.assign(row, await timeDsaGpu(gpu, c, mode === 'prefill' ? Math.min(reps, 3) : reps, 1));
      // Flash prefill is quadratic: once one length exceeds the budget, longer ones are predicted, not run.
      if (mode === 'decode' || !flashPrefillSkipped) {
        row.flashMs = await timeFlashGpu(gpu, c, mode === 'prefill' ? Math.min(reps, 3) : reps, 1);
        if (mode === 'prefill' && (row.flashMs * 4) / 1000 > Number(v['budget-seconds'])) flashPrefillSkipped = true;
      } else {
        const last = rows.filter((r) => r.mode === 'prefill' && r.flashMs != null).at(-1);
        row.flashPredictedMs = last ? last.flashMs * (N / last.seqLen) ** 2 : null;
      }
      // Decode as a model runs it: the device-resident cache, uploads and read-back included.
      if (mode === 'decode') row.cacheStepMs = await timeDsaCacheDecodeGpu(gpu, c, reps, 1);
      row.speedup = (row.flashMs ?? row.flashPredictedMs) / row.ms;
      if (row.attentionOldMs != null) {
        row.oldMs = row.indexerMs + row.selectionOldMs + row.attentionOldMs;
        row.oldSpeedup = (row.flashMs ?? row.flashPredictedMs) / row.oldMs;
      }
      row.indexerShare = row.indexerMs / row.ms;
      row.wallSeconds = (performance.now() - t0) / 1000;
    } catch (e) {
      row.error = String(e.message ?? e).slice(0, 200);
    }
    rows.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
}
mkdirSync(v.out, { recursive: true });
writeFileSync(
  join(v.out, 'dsa.json'),
  JSON.stringify({ device: device.name, date: new Date().toISOString(), rows }, null, 2),
);
const oldNew = (o, n, mid) => (o != null ? `${fmt(o)} → ${mid != null ? `${fmt(mid)} → ` : ''}${fmt(n)}` : fmt(n));
const md = [
  `DSA on ${device.name}: ${v.heads} heads (${v['kv-heads']} KV), head dim ${v['head-dim']}, f16, causal; indexer 4 heads x 64 dims ${v.precision}, topk ${v.topk}`,
  '',
  ...(v['compare-old']
    ? [
        'Cells "a → b": old kernels (tiles attention, plain-atomics selection) → new (lanes attention with split-KV, sampled selection), same run. Selection: plain (the default) → aggregated atomics → plain atomics + sampled first digit.',
        '',
      ]
    : []),
  '| mode | N | indexer ms | selection ms | attention ms | DSA ms | flash/dense ms | speedup | indexer share | decode step via cache ms |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.mode} | ${r.seqLen / 1024}K | ${fmt(r.indexerMs)} | ${oldNew(r.selectionOldMs, r.selectionMs, r.selectionAggregateOnlyMs)} | ${oldNew(r.attentionOldMs, r.attentionMs)} | ${oldNew(r.oldMs, r.ms)} | ${r.flashMs != null ? fmt(r.flashMs) : r.flashPredictedMs != null ? `~${fmt(r.flashPredictedMs)} (predicted)` : '—'} | ${r.speedup ? (r.oldSpeedup ? r.oldSpeedup.toFixed(1) + 'x → ' : '') + r.speedup.toFixed(1) + 'x' : '—'} | ${r.indexerShare != null ? (100 * r.indexerShare).toFixed(0) + '%' : (r.error ?? '—')} | ${r.cacheStepMs != null ? fmt(r.cacheStepMs) : '—'} |`,
  ),
];
writeFileSync(join(v.out, 'dsa.md'), md.join('\n') + '\n');
console.log(md.join('\n'));
device.destroy();
