// `longctx bench attention`: sweeps lengths x methods x dtypes on one device and writes the report as
// JSON, a markdown table and SVG plots. Rows from another run (PyTorch, see scripts/torch_sdpa_bench.py)
// can be merged in with --reference, so that one table compares both.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchAttentionCase, type AttentionCase } from '../bench/attention-bench.js';
import { ProgressBar } from '../bench/progress.js';
import { formatTokens, toMarkdown, type BenchReport, type BenchRow } from '../bench/report.js';
import { toSvgPlot } from '../bench/svg-plot.js';
import { formatMethodSpec, parseMethodSpec } from '../attention/spec.js';
import { InputError, ShapeError } from '../errors.js';
import { acquireDevice } from '../runtime/device.js';
import type { DType } from '../tensor.js';
import { backendOption, intList, numberOption, parse } from './args.js';
import { BENCH_DSA_USAGE, benchDsaCommand } from './bench-dsa.js';
import { BENCH_KERNELS_USAGE, benchKernelsCommand } from './bench-kernels.js';
import { BENCH_STAR_USAGE, benchStarCommand } from './bench-star.js';
import { BENCH_MODEL_USAGE, benchModelCommand } from './bench-model.js';
import { BENCH_PEERS_USAGE, benchPeersCommand } from './bench-peers.js';
import { BENCH_RESIDENT_USAGE, benchResidentCommand } from './bench-resident.js';

export const BENCH_ATTENTION_USAGE = `usage: longctx bench attention [--lengths 1K,2K,...,128K] [--method SPEC]... [--dtypes f16,f32]
                      [--heads 32] [--kv-heads H] [--head-dim 128] [--no-causal] [--reps 3] [--warmup 1]
                      [--budget-seconds 60] [--backend cpu|webgpu|auto] [--reference rows.json]
                      [--out-dir bench-out] [--title T]
  A method whose predicted time (quadratic in length; linear for window and sinks) exceeds
  --budget-seconds per call is skipped.`;

/** The benchmarks, by name: `longctx bench NAME ...`. */
const BENCHES: Record<string, { usage: string; run: (argv: string[]) => Promise<void> }> = {
  attention: { usage: BENCH_ATTENTION_USAGE, run: benchAttentionCommand },
  dsa: { usage: BENCH_DSA_USAGE, run: benchDsaCommand },
  star: { usage: BENCH_STAR_USAGE, run: benchStarCommand },
  kernels: { usage: BENCH_KERNELS_USAGE, run: benchKernelsCommand },
  model: { usage: BENCH_MODEL_USAGE, run: benchModelCommand },
  peers: { usage: BENCH_PEERS_USAGE, run: benchPeersCommand },
  resident: { usage: BENCH_RESIDENT_USAGE, run: benchResidentCommand },
};

export const BENCH_USAGE = Object.values(BENCHES)
  .map((b) => b.usage)
  .join('\n\n');

const GPU_LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
const CPU_LENGTHS = [256, 512, 1024, 2048];

export async function benchCommand(argv: string[]): Promise<void> {
  const [what, ...rest] = argv;
  const bench = BENCHES[what ?? ''];
  if (!bench || !Object.hasOwn(BENCHES, what))
    throw new InputError(`bench: unknown benchmark '${what ?? ''}'; available: ${Object.keys(BENCHES).join(', ')}`);
  await bench.run(rest);
}

async function benchAttentionCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    lengths: { type: 'string' },
    method: { type: 'string', multiple: true },
    dtypes: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    'no-causal': { type: 'boolean' },
    reps: { type: 'string' },
    warmup: { type: 'string' },
    'budget-seconds': { type: 'string' },
    backend: { type: 'string' },
    reference: { type: 'string' },
    'out-dir': { type: 'string' },
    title: { type: 'string' },
  });
  const device = await acquireDevice(backendOption(v));
  const onGpu = device.backend === 'webgpu';
  const lengths = intList(v, 'lengths', onGpu ? GPU_LENGTHS : CPU_LENGTHS);
  const methods = ((v.method as unknown as string[] | undefined) ?? ['dense', 'flash']).map(parseMethodSpec);
  for (const m of methods)
    if (!['dense', 'flash', 'window', 'sinks', 'hybrid', 'cca', 'dsa'].includes(m.name))
      throw new InputError(`bench attention: method '${m.name}' is not benchmarked yet`);
  const dtypes = String(v.dtypes ?? (onGpu ? 'f16' : 'f32'))
    .split(',')
    .map((d) => {
      if (d !== 'f16' && d !== 'f32') throw new InputError(`--dtypes: '${d}' is not f16 or f32`);
      return d as DType;
    });
  const heads = numberOption(v, 'heads') ?? (onGpu ? 32 : 4);
  const kvHeads = numberOption(v, 'kv-heads') ?? heads;
  const headDim = numberOption(v, 'head-dim') ?? (onGpu ? 128 : 64);
  if (heads % kvHeads !== 0)
    throw new ShapeError(`--heads ${heads} must be a multiple of --kv-heads ${kvHeads} for grouped-query attention`);
  const timing = { reps: numberOption(v, 'reps') ?? 3, warmup: numberOption(v, 'warmup') ?? 1 };
  const budgetMs = (numberOption(v, 'budget-seconds') ?? 60) * 1000;
  const outDir = String(v['out-dir'] ?? 'bench-out');
  const rows: BenchRow[] = [];
  const cases: AttentionCase[] = [];
  for (const dtype of dtypes) {
    for (const method of methods) {
      for (const seqLen of [...lengths].sort((a, b) => a - b)) {
        cases.push({ method, dtype, seqLen, heads, kvHeads, headDim, causal: !v['no-causal'] });
      }
    }
  }
  const bar = new ProgressBar(cases.length, `bench on ${device.name}`);
  const last = new Map<string, { seqLen: number; ms: number | null; failed: boolean }>();
  try {
    for (const c of cases) {
      const key = `${formatMethodSpec(c.method)}/${c.dtype}`;
      const prev = last.get(key);
      let row: BenchRow;
      // Exact methods grow with N^2; windows and sinks with N once N passes their reach.
      const growth = c.method.name === 'window' || c.method.name === 'sinks' ? 1 : 2;
      const predicted = prev?.ms ? prev.ms * (c.seqLen / prev.seqLen) ** growth : 0;
      if (prev?.failed || predicted > budgetMs) {
        row = {
          source: 'longctx',
          method: formatMethodSpec(c.method),
          backend: device.backend,
          dtype: c.dtype,
          seqLen: c.seqLen,
          heads,
          kvHeads,
          headDim,
          causal: c.causal,
          ms: null,
          tflops: null,
          peakBytes: null,
          status: 'skipped',
          note: prev?.failed
            ? 'a shorter length already failed'
            : `predicted ${(predicted / 1000).toFixed(0)} s > budget`,
        };
      } else {
        row = await benchAttentionCase(device, c, timing);
      }
      rows.push(row);
      // A skipped row keeps the last measured one, so predictions keep growing from real figures.
      if (row.status !== 'skipped')
        last.set(key, { seqLen: c.seqLen, ms: row.ms, failed: row.status === 'oom' || row.status === 'error' });
      bar.tick(`${key} ${formatTokens(c.seqLen)}: ${row.status === 'ok' ? `${row.ms!.toFixed(2)} ms` : row.status}`);
    }
  } finally {
    bar.done();
  }
  if (typeof v.reference === 'string') {
    try {
      rows.push(...(JSON.parse(readFileSync(v.reference, 'utf8')) as { rows: BenchRow[] }).rows);
    } catch (e) {
      throw new InputError(`--reference ${v.reference}: ${(e as Error).message}`);
    }
  }
  const report: BenchReport = {
    title: String(v.title ?? 'Attention forward'),
    device: device.name,
    date: new Date().toISOString().slice(0, 10),
    rows,
  };
  device.destroy();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'attention.json'), JSON.stringify(report, null, 2) + '\n');
  const md = toMarkdown(report);
  writeFileSync(join(outDir, 'attention.md'), md);
  writeFileSync(
    join(outDir, 'attention-ms.svg'),
    toSvgPlot(report, { y: 'ms', title: `${report.title}: time per call` }),
  );
  writeFileSync(
    join(outDir, 'attention-tflops.svg'),
    toSvgPlot(report, { y: 'tflops', title: `${report.title}: TFLOP/s` }),
  );
  writeFileSync(
    join(outDir, 'attention-memory.svg'),
    toSvgPlot(report, { y: 'peakBytes', title: `${report.title}: peak memory` }),
  );
  process.stdout.write(md);
  process.stderr.write(`bench: wrote ${outDir}/attention.{json,md} and three SVG plots\n`);
}
