// `longctx bench dsa`: DeepSeek Sparse Attention's sweep on WebGPU (src/bench/dsa-sweep.ts); writes dsa.json
// and dsa.md into --out-dir and prints each row as a JSON line while it runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dsaSweep, dsaSweepMarkdown, type DsaSweepOptions } from '../bench/dsa-sweep.js';
import { InputError } from '../errors.js';
import { acquireDevice } from '../runtime/device.js';
import { intList, numberOption, parse } from './args.js';

export const BENCH_DSA_USAGE = `usage: longctx bench dsa [--lengths 8K,16K,32K,64K,128K] [--out-dir bench-out/dsa] [--heads 32]
                      [--kv-heads 8] [--head-dim 128] [--topk 2048] [--precision int8|float] [--reps 5]
                      [--budget-seconds 60] [--compare-old]
  WebGPU only. Prefill and decode per length, indexer / selection / attention apart, against flash prefill
  and dense decoding (flash with one query); --compare-old also times the previous kernels (old -> new).`;

export async function benchDsaCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    lengths: { type: 'string' },
    'out-dir': { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    topk: { type: 'string' },
    precision: { type: 'string' },
    reps: { type: 'string' },
    'budget-seconds': { type: 'string' },
    'compare-old': { type: 'boolean' },
  });
  const precision = String(v.precision ?? 'int8');
  if (precision !== 'int8' && precision !== 'float')
    throw new InputError(`--precision must be int8 or float, got '${precision}'`);
  const o: DsaSweepOptions = {
    lengths: intList(v, 'lengths', [8192, 16384, 32768, 65536, 131072]),
    heads: numberOption(v, 'heads') ?? 32,
    kvHeads: numberOption(v, 'kv-heads') ?? 8,
    headDim: numberOption(v, 'head-dim') ?? 128,
    topk: numberOption(v, 'topk') ?? 2048,
    precision,
    reps: numberOption(v, 'reps') ?? 5,
    budgetSeconds: numberOption(v, 'budget-seconds') ?? 60,
    compareOld: v['compare-old'] === true,
  };
  const outDir = String(v['out-dir'] ?? 'bench-out/dsa');
  const device = await acquireDevice('webgpu');
  try {
    const rows = await dsaSweep(device.gpu!, o, (row) => process.stdout.write(`${JSON.stringify(row)}\n`));
    mkdirSync(outDir, { recursive: true });
    const report = { device: device.name, date: new Date().toISOString(), rows };
    writeFileSync(join(outDir, 'dsa.json'), JSON.stringify(report, null, 2));
    const md = dsaSweepMarkdown(device.name, o, rows);
    writeFileSync(join(outDir, 'dsa.md'), md);
    process.stdout.write(md);
  } finally {
    device.destroy();
  }
}
