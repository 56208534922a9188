// SVG charts of an eval: accuracy against length per configuration with 95% Wilson intervals (error bars),
// loss against position, and a length x depth heatmap for the needle tasks. Self-contained SVG, no
// dependencies; the x axis is log2 (tokens).
import { escapeXml } from '../bench/svg-plot.js';
import { formatTokens } from '../bench/report.js';

export interface ChartPoint {
  x: number;
  y: number;
  lo?: number;
  hi?: number;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** Fixed y range (accuracy: [0, 1]); else fitted. */
  yRange?: [number, number];
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const [W, H, L, R, T, B] = [960, 480, 70, 330, 50, 60];

const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`;
const open = (w: number, h: number, title: string) => [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
  `<rect width="${w}" height="${h}" fill="white"/>`,
  text(w / 2, 25, title, 'text-anchor="middle" font-size="15"'),
];

export function lineChartSvg(chart: LineChart): string {
  const parts = open(W, H, chart.title);
  const pts = chart.series.flatMap((s) => s.points).filter((p) => p.x > 0 && Number.isFinite(p.y));
  if (pts.length === 0) return [...parts, text(W / 2, H / 2, 'no data', 'text-anchor="middle"'), '</svg>\n'].join('\n');
  const x0 = Math.floor(Math.log2(Math.min(...pts.map((p) => p.x))));
  const x1 = Math.max(x0 + 1, Math.ceil(Math.log2(Math.max(...pts.map((p) => p.x)))));
  let [y0, y1] = chart.yRange ?? [Math.min(...pts.map((p) => p.lo ?? p.y)), Math.max(...pts.map((p) => p.hi ?? p.y))];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number) => L + ((Math.log2(x) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  for (let e = x0; e <= x1; e++)
    parts.push(
      `<line x1="${px(2 ** e).toFixed(1)}" y1="${T}" x2="${px(2 ** e).toFixed(1)}" y2="${H - B}" stroke="#ddd"/>`,
      text(px(2 ** e), H - B + 18, formatTokens(2 ** e), 'text-anchor="middle"'),
    );
  for (let i = 0; i <= 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 5;
    parts.push(
      `<line x1="${L}" y1="${py(y).toFixed(1)}" x2="${W - R}" y2="${py(y).toFixed(1)}" stroke="#ddd"/>`,
      text(L - 6, py(y) + 4, String(Number(y.toPrecision(3))), 'text-anchor="end"'),
    );
  }
  parts.push(
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`,
    text((L + W - R) / 2, H - 15, chart.xLabel, 'text-anchor="middle"'),
    text(18, (T + H - B) / 2, chart.yLabel, `text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})"`),
  );
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const sorted = s.points.filter((p) => p.x > 0 && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    // Offset series a little along x so that error bars of equal points stay visible.
    const dx = (i - (chart.series.length - 1) / 2) * 3;
    const xy = sorted.map((p) => [px(p.x) + dx, py(p.y)] as const);
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`,
    );
    sorted.forEach((p, j) => {
      const [x, y] = xy[j];
      if (p.lo !== undefined && p.hi !== undefined)
        parts.push(
          `<line x1="${x.toFixed(1)}" y1="${py(p.lo).toFixed(1)}" x2="${x.toFixed(1)}" y2="${py(p.hi).toFixed(1)}" ` +
            `stroke="${color}" stroke-width="1.5"/>`,
        );
      parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${color}"/>`);
    });
    const ly = T + 10 + i * 20;
    parts.push(
      `<line x1="${W - R + 15}" y1="${ly}" x2="${W - R + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      text(W - R + 46, ly + 4, s.name.length > 46 ? s.name.slice(0, 45) + '…' : s.name),
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export interface HeatCell {
  length: number;
  depth: number;
  accuracy: number;
  n: number;
}

/** Lengths across, depths down; red (0) through yellow to green (1); each cell labelled with its accuracy. */
export function heatmapSvg(title: string, cells: HeatCell[]): string {
  const lengths = [...new Set(cells.map((c) => c.length))].sort((a, b) => a - b);
  const depths = [...new Set(cells.map((c) => c.depth))].sort((a, b) => a - b);
  const [cw, ch, left, top] = [70, 34, 90, 60];
  const w = left + cw * Math.max(1, lengths.length) + 30;
  const h = top + ch * Math.max(1, depths.length) + 50;
  const parts = open(Math.max(w, 420), h, title);
  const color = (a: number) => {
    const hue = Math.round(120 * Math.min(1, Math.max(0, a)));
    return `hsl(${hue}, 70%, 55%)`;
  };
  lengths.forEach((len, i) =>
    parts.push(text(left + cw * (i + 0.5), top - 8, formatTokens(len), 'text-anchor="middle"')),
  );
  depths.forEach((d, j) => parts.push(text(left - 8, top + ch * (j + 0.5) + 4, `${d}%`, 'text-anchor="end"')));
  for (const c of cells) {
    const [x, y] = [left + cw * lengths.indexOf(c.length), top + ch * depths.indexOf(c.depth)];
    parts.push(
      `<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="${color(c.accuracy)}">` +
        `<title>${escapeXml(`${formatTokens(c.length)} at ${c.depth}%: ${c.accuracy.toFixed(2)} of ${c.n}`)}</title></rect>`,
      text(x + cw / 2 - 1, y + ch / 2 + 3, c.accuracy.toFixed(2), 'text-anchor="middle" font-size="11"'),
    );
  }
  parts.push(
    text(left + (cw * lengths.length) / 2, h - 15, 'prompt length (tokens)', 'text-anchor="middle"'),
    text(
      16,
      top + (ch * depths.length) / 2,
      'needle depth',
      `text-anchor="middle" transform="rotate(-90 16 ${top + (ch * depths.length) / 2})"`,
    ),
    '</svg>',
  );
  return parts.join('\n') + '\n';
}
