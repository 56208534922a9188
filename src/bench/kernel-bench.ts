// `longctx bench kernels`: times every kernel version (kernels/versions.ts) the device supports on the
// issue's shapes (flash causal f16 32 heads D 128 16K-128K and D 64 16K; matmul 4096x2048x8192 and
// 4096x8192x2048; GEMV M = 1 over 2048x8192 f16 weights rotating through >= 512 MiB; copy bandwidth).
// Timing: GPU timestamp queries around one compute pass of many dispatches where the device has
// 'timestamp-query', else wall clock over the same single submit. Rows carry TFLOP/s or GB/s and,
// given PyTorch's rows for the same cases (scripts/torch_kernels_bench.py), the ratio to them.
import type { GpuContext } from '../runtime/webgpu.js';
import { FLASH_VERSIONS, GEMV_VERSIONS, MATMUL_VERSIONS } from '../kernels/versions.js';
import { flashDispatcher, matmulDispatcher, type Dispatcher } from './kernel-run.js';
import { randomGpuBuffer } from './gpu-fill.js';

export interface KernelBenchRow {
  family: 'flash' | 'matmul' | 'gemv' | 'copy';
  version: string;
  /** The work, named as the torch script names it (e.g. 'causal H32 D128 N16384'). */
  case: string;
  ms: number | null;
  tflops?: number;
  gbps?: number;
  timer: 'timestamp' | 'wall';
  reps: number;
  /** PyTorch's rate for the same case, and ours over it. */
  torch?: number;
  ratio?: number;
  /** GEMV only: our bandwidth over torch's device-to-device copy bandwidth. */
  vsCopy?: number;
  error?: string;
}

export interface KernelBenchOptions {
  /** Flash lengths at D 128 (D 64 runs at the first). */
  lengths: number[];
  /** Only versions whose name is listed (all when empty). */
  versions: string[];
  /** Seconds of timed work to aim for per row (reps are derived from a first run). */
  targetSeconds: number;
  /** Small shapes for a smoke test on a CPU adapter (lavapipe); the shapes otherwise. */
  small?: boolean;
  log(line: string): void;
}

const GIB = 1024 ** 3;

/** Times `record` over `reps` dispatch rounds in one pass; ms per round. */
/** The row of a case that failed (the run goes on to the next), logged as FAILED with the reason. */
function failedRow(family: KernelBenchRow['family'], version: string, name: string, e: unknown, o: KernelBenchOptions) {
  const error = String((e as Error).message).slice(0, 400);
  o.log(`${family} ${version} ${name}: FAILED ${error}`);
  return { family, version, case: name, ms: null, timer: 'wall', reps: 0, error } satisfies KernelBenchRow;
}

async function timeRounds(
  gpu: GpuContext,
  record: Dispatcher,
  reps: number,
): Promise<{ ms: number; timer: 'timestamp' | 'wall' }> {
  const device = gpu.device;
  const stamps = gpu.features.timestamps;
  const querySet = stamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
  const resolve = stamps
    ? device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
    : undefined;
  const read = stamps
    ? device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
    : undefined;
  try {
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass(
      querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
    );
    record(pass, reps);
    pass.end();
    if (querySet) {
      enc.resolveQuerySet(querySet, 0, 2, resolve!, 0);
      enc.copyBufferToBuffer(resolve!, 0, read!, 0, 16);
    }
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const wall = performance.now() - t0;
    const err = await device.popErrorScope();
    if (err) throw new Error(err.message);
    if (!read) return { ms: wall / reps, timer: 'wall' };
    await read.mapAsync(GPUMapMode.READ);
    const [a, b] = new BigInt64Array(read.getMappedRange().slice(0));
    read.unmap();
    const ns = Number(b - a);
    // A zero or negative span means the timestamps are unusable here: fall back to the wall clock.
    return ns > 0 ? { ms: ns / 1e6 / reps, timer: 'timestamp' } : { ms: wall / reps, timer: 'wall' };
  } finally {
    querySet?.destroy();
    resolve?.destroy();
    read?.destroy();
  }
}

/** A warm-up round, then the median of 3 submits of enough rounds for about targetSeconds / 3 each
 * (single slow submits, 2-4x off, were seen on the H200 in both runs of 2026-12-01). */
async function measure(gpu: GpuContext, record: Dispatcher, targetSeconds: number) {
  const first = await timeRounds(gpu, record, 1);
  if (first.ms > targetSeconds * 1000) return { ...first, reps: 1 };
  const reps = Math.max(1, Math.min(50, Math.round((targetSeconds * 1000) / 3 / Math.max(first.ms, 1e-3))));
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await timeRounds(gpu, record, reps));
  runs.sort((a, b) => a.ms - b.ms);
  return { ...runs[1], reps: reps * 3 };
}

const wanted = (o: KernelBenchOptions, name: string) => o.versions.length === 0 || o.versions.includes(name);

export async function benchFlash(gpu: GpuContext, o: KernelBenchOptions): Promise<KernelBenchRow[]> {
  const rows: KernelBenchRow[] = [];
  const H = 32;
  const cases = [...o.lengths.map((n) => ({ n, d: 128 })), ...[64, 80, 32].map((d) => ({ n: o.lengths[0], d }))];
  for (const { n, d } of cases) {
    const name = `causal H${H} D${d} N${n}`;
    // Heads per dispatch: the f32 output of a chunk must fit one binding; every chunk is dispatched.
    let hc = H;
    while (hc > 1 && hc * n * d * 4 > gpu.maxBindingBytes) hc /= 2;
    const owned: GPUBuffer[] = [];
    try {
      const q = await randomGpuBuffer(gpu, hc * n * d, true, 1, 'q');
      const k = await randomGpuBuffer(gpu, hc * n * d, true, 2, 'k');
      const v = await randomGpuBuffer(gpu, hc * n * d, true, 3, 'v');
      owned.push(q, k, v);
      const out = await gpu.createBuffer(hc * n * d * 4, 'o');
      const lse = await gpu.createBuffer(hc * n * 4, 'lse');
      owned.push(out, lse);
      const flops = 2 * 2 * n * n * d * H * 0.5;
      for (const ver of FLASH_VERSIONS) {
        if (!wanted(o, ver.name)) continue;
        const why = ver.unsupported(gpu, 'f16', d);
        if (why) {
          o.log(`flash ${ver.name} ${name}: skipped (${why})`);
          continue;
        }
        if (ver.name === 'portable' && n > o.lengths[0]) continue; // 10x slower: its shortest length is enough
        try {
          const run = await flashDispatcher(
            gpu,
            ver,
            { heads: hc, kvHeads: hc, queries: n, keys: n, headDim: d, causal: true },
            'f16',
            { q, k, v, o: out, lse },
          );
          const rounds: Dispatcher = (pass, reps = 1) => run.record(pass, reps * (H / hc));
          const t = await measure(gpu, rounds, o.targetSeconds);
          run.release();
          const tflops = flops / (t.ms * 1e-3) / 1e12;
          rows.push({ family: 'flash', version: ver.name, case: name, ms: t.ms, tflops, timer: t.timer, reps: t.reps });
          o.log(
            `flash ${ver.name} ${name}: ${t.ms.toFixed(2)} ms, ${tflops.toFixed(1)} TFLOP/s (${t.timer} x${t.reps})`,
          );
        } catch (e) {
          rows.push(failedRow('flash', ver.name, name, e, o));
        }
      }
    } finally {
      for (const b of owned) gpu.release(b);
    }
  }
  return rows;
}

export async function benchMatmul(gpu: GpuContext, o: KernelBenchOptions): Promise<KernelBenchRow[]> {
  const rows: KernelBenchRow[] = [];
  for (const [m, n, k] of o.small
    ? [[256, 128, 512]]
    : [
        [4096, 2048, 8192],
        [4096, 8192, 2048],
        [512, 2048, 2048],
        [512, 8192, 2048],
      ]) {
    const name = `M${m} N${n} K${k}`;
    const x16 = await randomGpuBuffer(gpu, m * k, true, 4, 'x f16');
    const x32 = await randomGpuBuffer(gpu, m * k, false, 4, 'x f32');
    const w = await randomGpuBuffer(gpu, n * k, true, 5, 'w');
    const y = await gpu.createBuffer(m * n * 4, 'y');
    try {
      for (const ver of MATMUL_VERSIONS) {
        if (!wanted(o, ver.name)) continue;
        const why = ver.unsupported(gpu, 'f16', k);
        if (why) {
          o.log(`matmul ${ver.name} ${name}: skipped (${why})`);
          continue;
        }
        for (const xt of ver.halfActivations ? (['f16', 'f32'] as const) : (['f32'] as const)) {
          const label = `${ver.name} x${xt}`;
          try {
            const run = await matmulDispatcher(gpu, ver, { m, n, k }, 'f16', xt, { x: xt === 'f16' ? x16 : x32, w, y });
            const t = await measure(gpu, run.record, o.targetSeconds);
            run.release();
            const tflops = (2 * m * n * k) / (t.ms * 1e-3) / 1e12;
            rows.push({ family: 'matmul', version: label, case: name, ms: t.ms, tflops, timer: t.timer, reps: t.reps });
            o.log(
              `matmul ${label} ${name}: ${t.ms.toFixed(3)} ms, ${tflops.toFixed(1)} TFLOP/s (${t.timer} x${t.reps})`,
            );
          } catch (e) {
            rows.push(failedRow('matmul', label, name, e, o));
          }
        }
      }
    } finally {
      for (const b of [x16, x32, w, y]) gpu.release(b);
    }
  }
  return rows;
}

/** GEMV over distinct weight buffers in turn (>= 512 MiB in all, so none stays in L2), and a copy. */
export async function benchGemv(gpu: GpuContext, o: KernelBenchOptions): Promise<KernelBenchRow[]> {
  const rows: KernelBenchRow[] = [];
  for (const [n, k] of o.small
    ? [[512, 1024]]
    : [
        [8192, 2048],
        [2048, 8192],
      ]) {
    const bytes = n * k * 2;
    const count = Math.max(2, Math.ceil(((o.small ? 1 / 256 : 0.75) * GIB) / bytes));
    const name = `N${n} K${k} rotating ${((count * bytes) / 2 ** 20).toFixed(0)} MiB`;
    const ws: GPUBuffer[] = [];
    for (let i = 0; i < count; i++) ws.push(await randomGpuBuffer(gpu, n * k, true, 10 + i, 'w'));
    const x = await randomGpuBuffer(gpu, k, false, 6, 'x');
    const y = await gpu.createBuffer(n * 4, 'y');
    try {
      for (const ver of GEMV_VERSIONS) {
        if (!wanted(o, ver.name)) continue;
        const why = ver.unsupported(gpu, 'f16', k);
        if (why) {
          o.log(`gemv ${ver.name} ${name}: skipped (${why})`);
          continue;
        }
        try {
          const runs: Array<{ record: Dispatcher; release(): void }> = [];
          for (const w of ws) runs.push(await matmulDispatcher(gpu, ver, { m: 1, n, k }, 'f16', 'f32', { x, w, y }));
          const rounds: Dispatcher = (pass, reps = 1) => {
            for (let r = 0; r < reps; r++) for (const run of runs) run.record(pass, 1);
          };
          const t = await measure(gpu, rounds, o.targetSeconds);
          for (const run of runs) run.release();
          const ms = t.ms / count;
          const gbps = (bytes + k * 4 + n * 4) / (ms * 1e-3) / 1e9;
          rows.push({ family: 'gemv', version: ver.name, case: name, ms, gbps, timer: t.timer, reps: t.reps * count });
          o.log(
            `gemv ${ver.name} ${name}: ${(ms * 1000).toFixed(1)} us, ${gbps.toFixed(0)} GB/s (${t.timer} x${t.reps * count})`,
          );
        } catch (e) {
          rows.push(failedRow('gemv', ver.name, name, e, o));
        }
      }
    } finally {
      for (const b of [...ws, x, y]) gpu.release(b);
    }
  }
  rows.push(await benchCopy(gpu, o));
  return rows;
}

/** Device-to-device copy of 256 MiB, many in one submit, wall clock; read + write bytes counted. */
async function benchCopy(gpu: GpuContext, o: KernelBenchOptions): Promise<KernelBenchRow> {
  const bytes = (o.small ? 4 : 256) * 2 ** 20;
  const a = await gpu.createBuffer(bytes, 'copy a');
  const b = await gpu.createBuffer(bytes, 'copy b');
  try {
    const time = async (reps: number) => {
      const enc = gpu.device.createCommandEncoder();
      for (let r = 0; r < reps; r++) enc.copyBufferToBuffer(r % 2 ? b : a, 0, r % 2 ? a : b, 0, bytes);
      const t0 = performance.now();
      gpu.device.queue.submit([enc.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / reps;
    };
    await time(2);
    const ms = await time(40);
    const gbps = (2 * bytes) / (ms * 1e-3) / 1e9;
    const name = `copy ${bytes / 2 ** 20}MiB`;
    o.log(`${name}: ${ms.toFixed(3)} ms, ${gbps.toFixed(0)} GB/s (read + write, wall x40)`);
    return { family: 'copy', version: 'copyBufferToBuffer', case: name, ms, gbps, timer: 'wall', reps: 40 };
  } finally {
    gpu.release(a);
    gpu.release(b);
  }
}

/** Adds PyTorch's rate for the same case and the ratio (and, for GEMV, the fraction of torch's copy bandwidth). */
export function attachTorch(rows: KernelBenchRow[], torch: KernelBenchRow[]): void {
  const copy = torch.find((r) => r.family === 'copy')?.gbps;
  for (const r of rows) {
    const t = torch.find((x) => x.family === r.family && x.case === r.case);
    const ours = r.tflops ?? r.gbps;
    const theirs = t?.tflops ?? t?.gbps;
    if (ours !== undefined && theirs) {
      r.torch = theirs;
      r.ratio = ours / theirs;
    }
    if (r.family === 'gemv' && r.gbps && copy) r.vsCopy = r.gbps / copy;
  }
}
