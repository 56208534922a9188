// `longctx bench star`: Star against Ring across `longctx host` processes over a private NATS server
// (src/bench/star-bench.ts); star.json and star.md in --out-dir are rewritten after every run, so a run cut
// short by a time limit keeps what finished.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { starBench, starBenchMarkdown, type StarBenchOptions } from '../bench/star-bench.js';
import { InputError } from '../errors.js';
import { backendOption, intList, numberOption, parse } from './args.js';

export const BENCH_STAR_USAGE = `usage: longctx bench star [--backend cpu|webgpu|auto] [--hosts 1,2,4] [--lengths 2K] [--heads 32]
                      [--kv-heads H] [--head-dim 128] [--dtype f16|f32] [--block B] [--query 128]
                      [--methods star,ring] [--out-dir bench-out/star] [--timeout 200] [--verify] [--reps 1]
  Phase-1 (context encoding) time per host count and length on synthetic causal inputs the hosts make;
  Star's block (and anchor) is length / 16 unless --block. --verify fetches each result and checks it
  against one process on the CPU (small sizes).`;

export async function benchStarCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    backend: { type: 'string' },
    hosts: { type: 'string' },
    lengths: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    dtype: { type: 'string' },
    block: { type: 'string' },
    query: { type: 'string' },
    methods: { type: 'string' },
    'out-dir': { type: 'string' },
    timeout: { type: 'string' },
    verify: { type: 'boolean' },
    reps: { type: 'string' },
  });
  const dtype = String(v.dtype ?? 'f16');
  if (dtype !== 'f16' && dtype !== 'f32') throw new InputError(`--dtype must be f16 or f32, got '${dtype}'`);
  const methods = String(v.methods ?? 'star,ring').split(',');
  for (const m of methods)
    if (m !== 'star' && m !== 'ring') throw new InputError(`--methods: '${m}' is not star or ring`);
  const heads = numberOption(v, 'heads') ?? 32;
  const o: StarBenchOptions = {
    backend: v.backend === undefined ? 'cpu' : backendOption(v),
    hosts: intList(v, 'hosts', [1, 2, 4]),
    lengths: intList(v, 'lengths', [2048]),
    heads,
    kvHeads: numberOption(v, 'kv-heads') ?? heads,
    headDim: numberOption(v, 'head-dim') ?? 128,
    dtype,
    block: numberOption(v, 'block'),
    query: numberOption(v, 'query') ?? 128,
    methods: methods as Array<'star' | 'ring'>,
    timeoutMs: (numberOption(v, 'timeout') ?? 200) * 1000,
    verify: v.verify === true,
    reps: numberOption(v, 'reps') ?? 1,
  };
  const outDir = String(v['out-dir'] ?? 'bench-out/star');
  mkdirSync(outDir, { recursive: true });
  const rows = await starBench(o, (r, all) => {
    writeFileSync(join(outDir, 'star.json'), JSON.stringify(all, null, 2));
    writeFileSync(join(outDir, 'star.md'), starBenchMarkdown(all));
    process.stderr.write(
      `${r.hosts} hosts, ${r.length}, ${r.method}: phase 1 ${r.phase1Ms.toFixed(1)} ms ` +
        `(hosts ${r.hostMs.map((t) => t.toFixed(0)).join('/')}), load ${r.loadMs.toFixed(0)} ms` +
        `${r.check ? `, ${r.check}` : ''}\n`,
    );
  });
  process.stdout.write(rows.length ? `${join(outDir, 'star.md')}\n` : 'no rows\n');
}
