// `longctx bench star`: Star against Ring across host processes over NATS, the phase-1 (context encoding)
// time per length and host count, on synthetic causal inputs that the hosts generate themselves (no 3 GiB
// upload first). Star uses block = length / 16 (anchor = block) unless a block is given; results stay on
// the hosts (not fetched) unless `verify`, which also checks each run against one process on the CPU.
import { attention } from '../attention/attention.js';
import { Cluster, type DistributedTimings, type RunInputs } from '../cluster/cluster.js';
import { syntheticSlice, type SyntheticTensor } from '../cluster/synthetic.js';
import type { BackendName } from '../runtime/device.js';
import { cpuDevice } from '../runtime/device.js';
import { maxAbsDiff, type DType } from '../tensor.js';

export interface StarBenchOptions {
  backend: BackendName;
  hosts: number[];
  lengths: number[];
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  /** Star's block (and anchor); default length / 16. */
  block?: number;
  /** Star's query block. */
  query: number;
  methods: Array<'star' | 'ring'>;
  timeoutMs: number;
  verify: boolean;
  reps: number;
}

export interface StarBenchRow extends DistributedTimings {
  hosts: number;
  length: number;
  method: string;
  device: string;
  dtype: DType;
  heads: number;
  kvHeads: number;
  dim: number;
  rep: number;
  check?: string;
}

/** Runs every (host count, length, method, rep), handing each row to `onRow` as soon as it is measured. */
export async function starBench(
  o: StarBenchOptions,
  onRow: (row: StarBenchRow, rows: StarBenchRow[]) => void = () => {},
): Promise<StarBenchRow[]> {
  const rows: StarBenchRow[] = [];
  for (const hosts of o.hosts) {
    const cluster = await Cluster.start({ hosts, backend: o.backend, timeoutMs: o.timeoutMs });
    const device = cluster.hosts[0].device;
    try {
      for (const length of o.lengths) {
        const block = o.block ?? Math.max(1, Math.floor(length / 16));
        const g = (heads: number, seed: number): SyntheticTensor => ({
          heads,
          tokens: length,
          dim: o.headDim,
          dtype: o.dtype,
          seed,
        });
        const x: RunInputs = { kind: 'synthetic', q: g(o.heads, 1), k: g(o.kvHeads, 2), v: g(o.kvHeads, 3) };
        for (const name of o.methods) {
          const method = name === 'star' ? `star:block=${block},anchor=${block},query=${o.query}` : 'ring';
          for (let rep = 0; rep < o.reps; rep++) {
            const r = await cluster.run(x, method, {}, o.verify);
            let check: string | undefined;
            if (o.verify && x.kind === 'synthetic') {
              const [q, k, v] = [x.q, x.k, x.v].map((t) => syntheticSlice(t, 0, length));
              const spec = `${method}${method.includes(':') ? ',' : ':'}hosts=${hosts}`;
              const local = await attention(cpuDevice, q, k, v, spec);
              check = `max |dO| vs one process ${maxAbsDiff(r.state.o, local.o).toExponential(1)}`;
            }
            const row: StarBenchRow = {
              hosts,
              length,
              method,
              device,
              dtype: o.dtype,
              heads: o.heads,
              kvHeads: o.kvHeads,
              dim: o.headDim,
              rep,
              ...r.timings,
              check,
            };
            rows.push(row);
            onRow(row, rows);
          }
        }
      }
    } finally {
      await cluster.close();
    }
  }
  return rows;
}

/** star.md: one table row per run. */
export function starBenchMarkdown(rows: StarBenchRow[]): string {
  return (
    [
      '| hosts | length | method | phase 1 wall ms | per-host compute ms | phase 2 ms | load ms | check |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.hosts} | ${r.length} | ${r.method} | ${r.phase1Ms.toFixed(1)} | ` +
          `${r.hostMs.map((x) => x.toFixed(0)).join(' / ')} | ${r.phase2Ms.toFixed(1)} | ${r.loadMs.toFixed(0)} | ` +
          `${r.check ?? ''} |`,
      ),
    ].join('\n') + '\n'
  );
}
