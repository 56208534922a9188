// Benchmark report model (rows of attention timings) and its rendering as a GitHub markdown table.
// Shared by the bench CLI, the SVG plotter and the tests.

export type BenchStatus = 'ok' | 'oom' | 'skipped' | 'error';

export interface BenchRow {
  source: string; // 'longctx' or 'pytorch'
  method: string; // e.g. 'flash', 'dense', 'sdpa-flash', 'sdpa-math'
  backend: string; // 'webgpu', 'cpu', 'cuda'
  variant?: string; // kernel variant name, e.g. 'subgroup-matrix', 'portable'
  dtype: string; // 'f32' | 'f16' | 'bf16'
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
  ms: number | null; // median milliseconds per call
  tflops: number | null; // 4*N^2*H*D / time, halved when causal
  peakBytes: number | null; // peak device memory of the call
  status: BenchStatus;
  note?: string;
}

export interface BenchReport {
  title: string;
  device: string;
  date: string;
  rows: BenchRow[];
}

const DASH = '—';

/** Forward attention FLOPs: 4*Nq*Nk*H*D (QK^T and PV), halved when causal and Nq == Nk. */
export function attentionFlops(
  seqLen: number,
  heads: number,
  headDim: number,
  causal: boolean,
  queryLen = seqLen,
): number {
  const flops = 4 * queryLen * seqLen * heads * headDim;
  return causal && queryLen === seqLen ? flops / 2 : flops;
}

/** Token counts: exact multiples of 1024 as '1K', '128K', else the plain number. */
export function formatTokens(n: number): string {
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}

/** Bytes in binary units: 'B', 'KiB', 'MiB', 'GiB', 'TiB' (one decimal above bytes). */
import { formatBytes } from '../io/limits.js';

export { formatBytes };

/** Escapes a cell for a GitHub table (pipes and newlines). */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function toMarkdown(report: BenchReport): string {
  const header = ['source', 'method', 'variant', 'backend', 'dtype', 'N', 'ms', 'TFLOP/s', 'peak memory', 'status'];
  const lines = [
    `## ${cell(report.title)} — ${cell(report.device)}, ${cell(report.date)}`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i >= 5 && i <= 8 ? ' ---: ' : ' --- ')).join('|')}|`,
  ];
  for (const r of report.rows) {
    const ok = r.status === 'ok';
    const num = <T>(v: T | null, f: (x: T) => string) => (ok && v !== null ? f(v) : DASH);
    const status = r.note ? `${r.status}: ${r.note}` : r.status;
    const cells = [
      r.source,
      r.method,
      r.variant ?? DASH,
      r.backend,
      r.dtype,
      formatTokens(r.seqLen),
      num(r.ms, (x) => String(Number(x.toPrecision(3)))),
      num(r.tflops, (x) => x.toFixed(1)),
      num(r.peakBytes, formatBytes),
      status,
    ];
    lines.push(`| ${cells.map(cell).join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}
