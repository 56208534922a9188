#!/usr/bin/env node
// Star against Ring across host processes over NATS: phase-1 (context encoding) time for each length and
// host count, on synthetic causal inputs that the hosts generate themselves (no 3 GiB upload first).
//   node scripts/bench-star.mjs --backend webgpu --hosts 4 --lengths 32K,64K,128K --out-dir bench-out/star
// Star uses block = length / 16 (anchor = block) unless --block; results stay on the hosts (not fetched).
// Optional --verify: also fetch and check each run against one process on the same inputs (small sizes).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster } from '../dist/src/cluster/cluster.js';
import { syntheticSlice } from '../dist/src/cluster/synthetic.js';
import { attention } from '../dist/src/attention/attention.js';
import { cpuDevice } from '../dist/src/runtime/device.js';
import { maxAbsDiff } from '../dist/src/reference/attention.js';

const { values: a } = parseArgs({
  options: {
    backend: { type: 'string', default: 'cpu' },
    hosts: { type: 'string', default: '1,2,4' },
    lengths: { type: 'string', default: '2K' },
    heads: { type: 'string', default: '32' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string', default: '128' },
    dtype: { type: 'string', default: 'f16' },
    block: { type: 'string' },
    query: { type: 'string', default: '128' },
    methods: { type: 'string', default: 'star,ring' },
    'out-dir': { type: 'string', default: 'bench-out/star' },
    timeout: { type: 'string', default: '200' },
    verify: { type: 'boolean', default: false },
    reps: { type: 'string', default: '1' },
  },
});
const ints = (s) => s.split(',').map((x) => (/k$/i.test(x) ? 1024 * Number(x.slice(0, -1)) : Number(x)));
const heads = Number(a.heads),
  kvHeads = Number(a['kv-heads'] ?? a.heads),
  dim = Number(a['head-dim']);
const rows = [];
mkdirSync(a['out-dir'], { recursive: true });
const save = () => {
  writeFileSync(join(a['out-dir'], 'star.json'), JSON.stringify(rows, null, 2));
  const md = [
    '| hosts | length | method | phase 1 wall ms | per-host compute ms | phase 2 ms | load ms | check |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.hosts} | ${r.length} | ${r.method} | ${r.phase1Ms.toFixed(1)} | ${r.hostMs.map((x) => x.toFixed(0)).join(' / ')} | ${r.phase2Ms.toFixed(1)} | ${r.loadMs.toFixed(0)} | ${r.check ?? ''} |`,
    ),
  ];
  writeFileSync(join(a['out-dir'], 'star.md'), md.join('\n') + '\n');
};
for (const hosts of ints(a.hosts)) {
  const cluster = await Cluster.start({ hosts, backend: a.backend, timeoutMs: Number(a.timeout) * 1000 });
  const device = cluster.hosts[0].device;
  try {
    for (const length of ints(a.lengths)) {
      const block = Number(a.block ?? Math.max(1, Math.floor(length / 16)));
      const g = (h, seed) => ({ heads: h, tokens: length, dim, dtype: a.dtype, seed });
      const x = { kind: 'synthetic', q: g(heads, 1), k: g(kvHeads, 2), v: g(kvHeads, 3) };
      for (const name of a.methods.split(',')) {
        const method = name === 'star' ? `star:block=${block},anchor=${block},query=${a.query}` : 'ring';
        for (let rep = 0; rep < Number(a.reps); rep++) {
          const r = await cluster.run(x, method, {}, a.verify);
          let check;
          if (a.verify) {
            const [q, k, v] = [x.q, x.k, x.v].map((t) => syntheticSlice(t, 0, length));
            const local = await attention(
              cpuDevice,
              q,
              k,
              v,
              `${method}${method.includes(':') ? ',' : ':'}hosts=${hosts}`,
            );
            check = `max |dO| vs one process ${maxAbsDiff(r.state.o, local.o).toExponential(1)}`;
          }
          rows.push({ hosts, length, method, device, dtype: a.dtype, heads, kvHeads, dim, rep, ...r.timings, check });
          process.stderr.write(
            `${hosts} hosts, ${length}, ${method}: phase 1 ${r.timings.phase1Ms.toFixed(1)} ms (hosts ${r.timings.hostMs.map((t) => t.toFixed(0)).join('/')}), load ${r.timings.loadMs.toFixed(0)} ms${check ? `, ${check}` : ''}\n`,
          );
          save();
        }
      }
    }
  } finally {
    await cluster.close();
  }
}
process.stdout.write(rows.length ? `${join(a['out-dir'], 'star.md')}\n` : 'no rows\n');
