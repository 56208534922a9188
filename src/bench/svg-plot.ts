// Self-contained SVG line chart of a benchmark report: seqLen (log2 x axis) against ms, TFLOP/s or peak memory.
// One line per series (source/method/variant/dtype); no dependencies.
import { type BenchReport, formatBytes, formatTokens } from './report.js';

export interface SvgPlotOptions {
  y: 'ms' | 'tflops' | 'peakBytes';
  title?: string;
  logY?: boolean;
}

const W = 900,
  H = 480,
  L = 80,
  R = 290,
  T = 50,
  B = 60; // canvas and margins
const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const Y_TITLES = { ms: 'time per call (ms)', tflops: 'TFLOP/s', peakBytes: 'peak memory' };

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`;

function formatY(v: number, y: SvgPlotOptions['y']): string {
  if (y === 'peakBytes') return formatBytes(v);
  return String(Number(v.toPrecision(3)));
}

/** Tick values for [lo, hi]: powers of `base` (at most ~8) when logarithmic, else ~5 round steps. */
function yTicks(lo: number, hi: number, log: boolean, base: number): number[] {
  if (log) {
    const e0 = Math.floor(Math.log(lo) / Math.log(base)),
      e1 = Math.ceil(Math.log(hi) / Math.log(base) - 1e-9);
    const step = Math.max(1, Math.ceil((e1 - e0) / 8));
    const out: number[] = [];
    for (let e = e0; e < e1 + step; e += step) out.push(base ** e);
    return out;
  }
  const step0 = (hi - lo) / 5 || 1;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v < hi + step * (1 - 1e-9); v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function toSvgPlot(report: BenchReport, opts: SvgPlotOptions): string {
  const logY = opts.logY ?? opts.y !== 'tflops';
  const title = opts.title ?? `${report.title} — ${Y_TITLES[opts.y]} (${report.device})`;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`;
  const parts = [
    head,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    text(W / 2, 25, title, 'text-anchor="middle" font-size="16"'),
  ];

  // Collect the plottable points per series.
  const series = new Map<string, { x: number; y: number }[]>();
  for (const r of report.rows) {
    const v = r[opts.y];
    if (r.status !== 'ok' || v === null || !Number.isFinite(v) || r.seqLen <= 0 || (logY && v <= 0)) continue;
    const key = [r.source, r.method, r.variant, r.dtype].filter(Boolean).join('/');
    if (!series.has(key)) series.set(key, []);
    series.get(key)!.push({ x: r.seqLen, y: v });
  }
  if (series.size === 0) {
    parts.push(text(W / 2, H / 2, 'no data', 'text-anchor="middle" font-size="20" fill="#888"'), '</svg>');
    return parts.join('\n') + '\n';
  }

  // Axis ranges: x in log2 units padded to whole powers of two, y padded to the tick range.
  const pts = [...series.values()].flat();
  const x0 = Math.floor(Math.log2(Math.min(...pts.map((p) => p.x))));
  const x1 = Math.max(Math.ceil(Math.log2(Math.max(...pts.map((p) => p.x)))), x0 + 1);
  let ylo = Math.min(...pts.map((p) => p.y)),
    yhi = Math.max(...pts.map((p) => p.y));
  if (!logY) ylo = Math.min(0, ylo);
  if (ylo === yhi) {
    ylo = logY ? ylo / 2 : ylo - 1;
    yhi = logY ? yhi * 2 : yhi + 1;
  }
  const ticks = yTicks(ylo, yhi, logY, opts.y === 'peakBytes' ? 2 : 10);
  ylo = Math.min(ylo, ticks[0]);
  yhi = Math.max(yhi, ticks[ticks.length - 1]);
  const fy = (v: number) => (logY ? Math.log10(v) : v);
  const px = (x: number) => L + ((Math.log2(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (v: number) => H - B - ((fy(v) - fy(ylo)) / (fy(yhi) - fy(ylo))) * (H - T - B);

  // Grid and tick labels.
  for (let e = x0; e <= x1; e++) {
    const x = px(2 ** e);
    parts.push(
      `<line x1="${x.toFixed(1)}" y1="${T}" x2="${x.toFixed(1)}" y2="${H - B}" stroke="#ddd"/>`,
      text(x, H - B + 18, formatTokens(2 ** e), 'text-anchor="middle"'),
    );
  }
  for (const t of ticks) {
    const y = py(t);
    parts.push(
      `<line x1="${L}" y1="${y.toFixed(1)}" x2="${W - R}" y2="${y.toFixed(1)}" stroke="#ddd"/>`,
      text(L - 6, y + 4, formatY(t, opts.y), 'text-anchor="end"'),
    );
  }
  parts.push(
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`,
    text((L + W - R) / 2, H - 15, 'sequence length (tokens, log2)', 'text-anchor="middle"'),
    text(
      18,
      (T + H - B) / 2,
      Y_TITLES[opts.y] + (logY ? ' (log)' : ''),
      `text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})"`,
    ),
  );

  // One polyline with markers per series, plus its legend entry.
  [...series.entries()].forEach(([key, points], i) => {
    const color = COLORS[i % COLORS.length];
    const sorted = points.sort((a, b) => a.x - b.x);
    const coords = sorted.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${coords.join(' ')}"/>`);
    for (const c of coords) {
      const [cx, cy] = c.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color}"/>`);
    }
    const ly = T + 10 + i * 20;
    parts.push(
      `<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      text(W - R + 46, ly + 4, key),
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
