// The model benchmark: a random-weight model of a named shape, per attention method and context, the
// prefill and decode speed of the decoder, its peak device memory, KV-cache bytes, and what a decoded
// token costs the host (reads, bytes) and the device (buffers, uniforms, bind groups created).
// Rendered as JSON, a markdown table and SVG plots (through report.ts / svg-plot.ts's row shape).
import { InputError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import { LLAMA_3_2_1B_SHAPE } from '../model/load/random-model.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { parseMethodSpec } from '../attention/spec.js';
import type { LoadedModel, ModelConfig } from '../model/types.js';
import { formatBytes, formatTokens, type BenchReport, type BenchRow } from './report.js';
import type { GpuProfiler } from '../runtime/gpu-profile.js';
import { modelProfile, modelProfileMarkdown, type ModelProfile } from './model-profile.js';

export const MODEL_SHAPES: Record<string, ModelConfig> = {
  'llama-3.2-1b': LLAMA_3_2_1B_SHAPE,
  /** A few-MiB model of the same family, for a check on the CPU or lavapipe. */
  tiny: {
    ...LLAMA_3_2_1B_SHAPE,
    vocabSize: 512,
    hiddenSize: 128,
    intermediateSize: 256,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 32,
  },
};

export type ShapeOverrides = Partial<
  Pick<ModelConfig, 'layers' | 'hiddenSize' | 'heads' | 'kvHeads' | 'headDim' | 'intermediateSize' | 'vocabSize'>
>;

export function modelShape(name: string, overrides: ShapeOverrides = {}): ModelConfig {
  const base = MODEL_SHAPES[name];
  if (!base) throw new InputError(`unknown model shape '${name}'; known: ${Object.keys(MODEL_SHAPES).join(', ')}`);
  const c = { ...base, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  if (c.heads % c.kvHeads !== 0)
    throw new InputError(`--heads ${c.heads} must be a multiple of --kv-heads ${c.kvHeads}`);
  if (c.headDim % 2 !== 0) throw new InputError(`--head-dim ${c.headDim} must be even (RoPE rotates pairs)`);
  return c;
}

export interface ModelBenchRow {
  source: string;
  method: string;
  backend: string;
  storage: string;
  /** The layer matrices' encoding (`--weights`: f32, f16, or a block format kept quantised on WebGPU). */
  weights?: string;
  /** Bytes the weights take on the device (WebGPU; quantised matrices in their GPU layouts). */
  weightBytes?: number;
  context: number;
  status: 'ok' | 'skipped' | 'error' | 'oom';
  note?: string;
  prefillSeconds?: number;
  prefillTokensPerSecond?: number;
  decodeSteps?: number;
  decodeTokensPerSecond?: number;
  /** Peak bytes the device held during the run (weights included); null on the CPU. */
  peakBytes?: number | null;
  kvBytes?: number;
  hostReadsPerToken?: number;
  hostReadBytesPerToken?: number;
  buffersPerToken?: number;
  uniformsPerToken?: number;
  bindGroupsPerToken?: number;
  /** Command buffers submitted per decoded token (runtime/submit-batch.ts). */
  submitsPerToken?: number;
  /** Queue writes per decoded token (unchanged uniforms are skipped, not counted). */
  writesPerToken?: number;
  /** Each layer's kernel choice (the planner's reasons). */
  plans?: string[];
  /** The matmul kernels that ran (WebGPU: tensor cores, GEMV or the portable ones), one line per choice. */
  matmul?: string[];
  /** With `--profile`: each kernel's GPU time in the prefill and per decoded token (bench/model-profile.ts). */
  profile?: ModelProfile;
}

export interface ModelBenchCase {
  method: string;
  context: number;
  decode: number;
  storage: 'f16' | 'f32';
  chunk: number;
}

/** A decoder per method, sized for the longest context it will run: the weights go up once per method. */
export async function modelDecoder(
  device: Device,
  model: LoadedModel,
  method: string,
  maxTokens: number,
  c: Pick<ModelBenchCase, 'storage' | 'chunk'>,
): Promise<Decoder> {
  return createDecoder(device, model, scheduleFromSpec(parseMethodSpec(method)), {
    maxTokens,
    chunk: c.chunk,
    storage: c.storage,
  });
}

/** One prefill of `context` tokens then `decode` steps (fixed ids, no sampling) on a reset decoder; with a
 * profiler installed on the device, the row also gets each kernel's GPU time (and says it was profiled). */
export async function benchModelCase(
  device: Device,
  decoder: Decoder,
  c: ModelBenchCase,
  profiler?: GpuProfiler,
): Promise<ModelBenchRow> {
  const row: ModelBenchRow = {
    source: 'longctx',
    method: c.method,
    backend: device.name,
    storage: device.gpu ? c.storage : 'f32',
    context: c.context,
    status: 'ok',
  };
  const gpu = device.gpu;
  gpu?.resetPeak();
  decoder.reset();
  try {
    const vocab = decoder.config.vocabSize;
    const ids = Array.from({ length: c.context }, (_, i) => (i * 7919 + 13) % vocab);
    profiler?.phase('prefill');
    const a = performance.now();
    let logits = await decoder.forward(ids);
    row.prefillSeconds = (performance.now() - a) / 1000;
    row.prefillTokensPerSecond = c.context / row.prefillSeconds;
    // The first decoded token warms its pipelines and bind groups; the counters cover the rest.
    profiler?.phase('warm');
    logits = await decoder.forward([1]);
    profiler?.phase('decode');
    const before = gpu ? { ...gpu.counters } : undefined;
    const b = performance.now();
    const steps = Math.max(1, c.decode - 1);
    for (let i = 0; i < steps; i++) logits = await decoder.forward([(i * 31 + 7) % vocab]);
    const seconds = (performance.now() - b) / 1000;
    if (logits.some(Number.isNaN)) throw new Error('NaN logits');
    row.decodeSteps = steps;
    row.decodeTokensPerSecond = steps / seconds;
    if (profiler) {
      row.profile = modelProfile(await profiler.collect(), steps);
      row.note = 'profiled: one timed pass per dispatch';
    }
    row.kvBytes = decoder.cacheBytes;
    row.weightBytes = (decoder as { weightBytes?: number }).weightBytes;
    row.plans = (decoder as { plans?: string[] }).plans;
    row.matmul = (decoder as { matmulPlans?: string[] }).matmulPlans;
    if (gpu && before) {
      const after = gpu.counters;
      const per = (k: keyof typeof after) => (after[k] - before[k]) / steps;
      row.peakBytes = gpu.peakBytes;
      row.hostReadsPerToken = per('hostReads');
      row.hostReadBytesPerToken = per('hostReadBytes');
      row.buffersPerToken = per('buffersCreated');
      row.uniformsPerToken = per('uniformsCreated');
      row.bindGroupsPerToken = per('bindGroupsCreated');
      row.submitsPerToken = per('submits');
      row.writesPerToken = per('writes');
    } else row.peakBytes = null;
  } catch (e) {
    const m = (e as Error).message;
    row.status = /memory|allocate/i.test(m) ? 'oom' : 'error';
    row.note = m.split('\n')[0].slice(0, 200);
  }
  return row;
}

/** How a method's prefill grows with the context: quadratic with a full-context layer, else linear. */
export function prefillGrowth(method: string): number {
  const name = parseMethodSpec(method).name;
  return ['window', 'sinks', 'cca', 'star'].includes(name) ? 1 : 2;
}

const num = (x: number | undefined, digits = 1) => (x === undefined ? '—' : x.toFixed(digits));

export function modelBenchMarkdown(
  title: string,
  device: string,
  rows: ModelBenchRow[],
  reference: ModelBenchRow[] = [],
): string {
  const head = [
    'source',
    'method',
    'storage',
    'weights',
    'context',
    'prefill tok/s',
    'decode tok/s',
    'peak memory',
    'weight memory',
    'KV cache',
    'host reads/token',
    'allocations/token',
    'status',
  ];
  const lines = [
    `## ${title} — ${device}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => ' --- ').join('|')}|`,
  ];
  for (const r of [...rows, ...reference]) {
    const allocations =
      r.buffersPerToken === undefined
        ? '—'
        : String((r.buffersPerToken ?? 0) + (r.uniformsPerToken ?? 0) + (r.bindGroupsPerToken ?? 0));
    lines.push(
      `| ${[
        r.source,
        r.method,
        r.storage,
        r.weights ?? r.storage,
        formatTokens(r.context),
        num(r.prefillTokensPerSecond, 0),
        num(r.decodeTokensPerSecond),
        r.peakBytes ? formatBytes(r.peakBytes) : '—',
        r.weightBytes ? formatBytes(r.weightBytes) : '—',
        r.kvBytes ? formatBytes(r.kvBytes) : '—',
        r.hostReadsPerToken === undefined ? '—' : num(r.hostReadsPerToken, 2),
        allocations,
        r.note ? `${r.status}: ${r.note}` : r.status,
      ]
        .map((s) => s.replace(/\|/g, '\\|'))
        .join(' | ')} |`,
    );
  }
  const matmul = [...new Set(rows.flatMap((r) => r.matmul ?? []))];
  if (matmul.length) lines.push('', 'Matmul kernels that ran:', ...matmul.map((m) => `- ${m}`));
  return lines.join('\n') + '\n' + modelProfileMarkdown(rows);
}

/** The rows as attention-report rows, for svg-plot.ts: ms = milliseconds per decoded token or per prefill. */
export function asPlotReport(
  title: string,
  device: string,
  rows: ModelBenchRow[],
  what: 'decode' | 'prefill',
): BenchReport {
  const plotted: BenchRow[] = rows
    .filter((r) => r.status === 'ok')
    .map((r) => ({
      source: r.source,
      method: r.method,
      backend: r.backend,
      dtype: r.storage,
      seqLen: r.context,
      heads: 0,
      kvHeads: 0,
      headDim: 0,
      causal: true,
      ms: what === 'decode' ? 1000 / (r.decodeTokensPerSecond ?? Number.NaN) : 1000 * (r.prefillSeconds ?? Number.NaN),
      tflops: null,
      peakBytes: r.peakBytes ?? null,
      status: 'ok',
    }));
  return { title, device, date: new Date().toISOString().slice(0, 10), rows: plotted };
}
