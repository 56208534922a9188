// `longctx bench dsa`: prefill and decode per length on WebGPU, the indexer, selection and attention apart
// (dsa-bench.ts), against flash prefill and dense decoding (flash with one query). Flash prefill is
// quadratic: once one length would exceed the budget, longer ones are predicted from it, not run.
import type { IndexerPrecision } from '../kernels/dsa-indexer-cpu.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { timeDsaCacheDecodeGpu, timeDsaGpu, timeFlashGpu, type DsaBenchCase, type DsaTimes } from './dsa-bench.js';

export interface DsaSweepOptions {
  lengths: number[];
  heads: number;
  kvHeads: number;
  headDim: number;
  topk: number;
  precision: IndexerPrecision;
  reps: number;
  /** Flash prefill stops growing once 4x its last time exceeds this. */
  budgetSeconds: number;
  /** Also time the previous kernels (tiles attention, plain-atomics selection): cells read old -> new. */
  compareOld: boolean;
}

export interface DsaSweepRow extends Partial<DsaTimes> {
  mode: 'prefill' | 'decode';
  seqLen: number;
  topk: number;
  precision: IndexerPrecision;
  heads: number;
  kvHeads: number;
  headDim: number;
  flashMs?: number;
  flashPredictedMs?: number | null;
  /** Decode as a model runs it: the device-resident cache, uploads and read-back included. */
  cacheStepMs?: number;
  speedup?: number;
  oldMs?: number;
  oldSpeedup?: number;
  indexerShare?: number;
  wallSeconds?: number;
  error?: string;
}

/** Runs the sweep, handing each row to `onRow` as soon as it is measured. */
export async function dsaSweep(
  gpu: GpuContext,
  o: DsaSweepOptions,
  onRow: (row: DsaSweepRow) => void = () => {},
): Promise<DsaSweepRow[]> {
  const rows: DsaSweepRow[] = [];
  let flashPrefillSkipped = false;
  for (const N of o.lengths) {
    for (const mode of ['prefill', 'decode'] as const) {
      const c: DsaBenchCase = {
        seqLen: N,
        queries: mode === 'prefill' ? N : 1,
        heads: o.heads,
        kvHeads: o.kvHeads,
        headDim: o.headDim,
        dtype: 'f16',
        topk: o.topk,
        indexHeads: 4,
        indexDim: 64,
        precision: o.precision,
        compareOld: o.compareOld,
      };
      const row: DsaSweepRow = {
        mode,
        seqLen: N,
        topk: c.topk,
        precision: c.precision,
        heads: c.heads,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
      };
      const reps = mode === 'prefill' ? Math.min(o.reps, 3) : o.reps;
      try {
        const t0 = performance.now();
        const times = await timeDsaGpu(gpu, c, reps, 1);
        Object.assign(row, times);
        if (mode === 'decode' || !flashPrefillSkipped) {
          row.flashMs = await timeFlashGpu(gpu, c, reps, 1);
          if (mode === 'prefill' && (row.flashMs * 4) / 1000 > o.budgetSeconds) flashPrefillSkipped = true;
        } else {
          const last = rows.filter((r) => r.mode === 'prefill' && r.flashMs != null).at(-1);
          row.flashPredictedMs = last ? last.flashMs! * (N / last.seqLen) ** 2 : null;
        }
        if (mode === 'decode') row.cacheStepMs = await timeDsaCacheDecodeGpu(gpu, c, o.reps, 1);
        const flash = row.flashMs ?? row.flashPredictedMs;
        if (flash != null) row.speedup = flash / times.ms;
        if (times.attentionOldMs != null) {
          row.oldMs = times.indexerMs + times.selectionOldMs! + times.attentionOldMs;
          if (flash != null) row.oldSpeedup = flash / row.oldMs;
        }
        row.indexerShare = times.indexerMs / times.ms;
        row.wallSeconds = (performance.now() - t0) / 1000;
      } catch (e) {
        row.error = String((e as Error).message ?? e).slice(0, 200);
      }
      rows.push(row);
      onRow(row);
    }
  }
  return rows;
}

const fmt = (x: number | null | undefined) => (x == null ? '—' : x < 10 ? x.toFixed(3) : x.toFixed(1));
const oldNew = (o: number | undefined, n: number | undefined, mid?: number) =>
  o != null ? `${fmt(o)} → ${mid != null ? `${fmt(mid)} → ` : ''}${fmt(n)}` : fmt(n);

/** dsa.md: one table row per (mode, length). */
export function dsaSweepMarkdown(device: string, o: DsaSweepOptions, rows: DsaSweepRow[]): string {
  const flashCell = (r: DsaSweepRow) =>
    r.flashMs != null ? fmt(r.flashMs) : r.flashPredictedMs != null ? `~${fmt(r.flashPredictedMs)} (predicted)` : '—';
  const speedupCell = (r: DsaSweepRow) =>
    r.speedup ? (r.oldSpeedup ? r.oldSpeedup.toFixed(1) + 'x → ' : '') + r.speedup.toFixed(1) + 'x' : '—';
  const shareCell = (r: DsaSweepRow) =>
    r.indexerShare != null ? (100 * r.indexerShare).toFixed(0) + '%' : (r.error ?? '—');
  const lines = [
    `DSA on ${device}: ${o.heads} heads (${o.kvHeads} KV), head dim ${o.headDim}, f16, causal; ` +
      `indexer 4 heads x 64 dims ${o.precision}, topk ${o.topk}`,
    '',
    ...(o.compareOld
      ? [
          'Cells "a → b": old kernels (tiles attention, plain-atomics selection) → new (lanes attention with ' +
            'split-KV, sampled selection), same run. Selection: plain (the default) → aggregated atomics → ' +
            'plain atomics + sampled first digit.',
          '',
        ]
      : []),
    '| mode | N | indexer ms | selection ms | attention ms | DSA ms | flash/dense ms | speedup | indexer share | ' +
      'decode step via cache ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.mode} | ${r.seqLen / 1024}K | ${fmt(r.indexerMs)} | ` +
        `${oldNew(r.selectionOldMs, r.selectionMs, r.selectionAggregateOnlyMs)} | ` +
        `${oldNew(r.attentionOldMs, r.attentionMs)} | ${oldNew(r.oldMs, r.ms)} | ${flashCell(r)} | ${speedupCell(r)} | ` +
        `${shareCell(r)} | ${r.cacheStepMs != null ? fmt(r.cacheStepMs) : '—'} |`,
    ),
  ];
  return lines.join('\n') + '\n';
}
