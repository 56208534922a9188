// `longctx bench resident`: the GPU-resident CCA and DSA layers as one model layer at long contexts, beside
// causal flash over the same shape (bench/resident-bench.ts): prefill in chunks, decode per token, the decode
// steps' host reads and creations, and the cache against a dense one. Writes resident.json and resident.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchResident, residentTable, type ResidentShape } from '../bench/resident-bench.js';
import { DeviceError, InputError } from '../errors.js';
import { acquireGpu } from '../runtime/acquire-gpu.js';
import { DECIDE_VERSIONS, DEFAULT_DECIDE, type DecideVersion } from '../kernels/topk-decide-wgsl.js';
import { intList, numberOption, parse } from './args.js';

export const BENCH_RESIDENT_USAGE = `usage: longctx bench resident [--contexts 32K,128K] [--methods flash,cca,dsa] [--chunk 4096]
                      [--decode 64] [--heads 32] [--kv-heads 8] [--head-dim 64] [--storage f16|f32]
                      [--group 16] [--window 1024] [--decide serial,workgroup] [--out-dir bench-resident]
  One layer of each method (CCA's group and window as given; DSA top-2048, int8 index keys, a row per
  --decide version of its selection) on WebGPU.`;

const METHODS = ['flash', 'cca', 'dsa'];

export async function benchResidentCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    contexts: { type: 'string' },
    methods: { type: 'string' },
    chunk: { type: 'string' },
    decode: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    storage: { type: 'string' },
    group: { type: 'string' },
    window: { type: 'string' },
    decide: { type: 'string' },
    'out-dir': { type: 'string' },
  });
  const methods = String(v.methods ?? METHODS.join(',')).split(',');
  for (const m of methods)
    if (!METHODS.includes(m)) throw new InputError(`--methods: '${m}' is not one of ${METHODS.join(', ')}`);
  const decide = String(v.decide ?? DEFAULT_DECIDE).split(',');
  for (const d of decide)
    if (!(DECIDE_VERSIONS as readonly string[]).includes(d))
      throw new InputError(`--decide: '${d}' is not one of ${DECIDE_VERSIONS.join(', ')}`);
  const dtype = String(v.storage ?? 'f16');
  if (dtype !== 'f16' && dtype !== 'f32') throw new InputError(`--storage: '${dtype}' is not f16 or f32`);
  const whole = (name: string, fallback: number) => {
    const n = numberOption(v, name) ?? fallback;
    if (!Number.isInteger(n) || n < 1) throw new InputError(`--${name} must be a positive integer, got '${v[name]}'`);
    return n;
  };
  const shape: ResidentShape = {
    heads: whole('heads', 32),
    kvHeads: whole('kv-heads', 8),
    headDim: whole('head-dim', 64),
    dtype,
  };
  if (shape.heads % shape.kvHeads !== 0)
    throw new InputError(`--heads ${shape.heads} is not a multiple of --kv-heads ${shape.kvHeads}`);
  const gpu = await acquireGpu();
  if (!gpu) throw new DeviceError('bench resident needs a WebGPU adapter');
  try {
    const log = (line: string) => process.stderr.write(`${line}\n`);
    log(`device: ${gpu.adapterName}`);
    const rows = await benchResident(gpu, {
      shape,
      contexts: intList(v, 'contexts', [32768, 131072]),
      chunk: whole('chunk', 4096),
      decode: whole('decode', 64),
      methods,
      group: whole('group', 16),
      window: whole('window', 1024),
      decide: decide as DecideVersion[],
      log,
    });
    const outDir = String(v['out-dir'] ?? 'bench-resident');
    mkdirSync(outDir, { recursive: true });
    const table = residentTable(rows, shape);
    writeFileSync(
      join(outDir, 'resident.json'),
      `${JSON.stringify({ device: gpu.adapterName, shape, rows }, null, 2)}\n`,
    );
    writeFileSync(join(outDir, 'resident.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    gpu.destroy();
  }
}
