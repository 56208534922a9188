// The eval report from its results: accuracy per (configuration, task, length) with 95% Wilson intervals,
// per needle depth, cost per configuration (seconds per case, KV-cache bytes), and the language-modelling
// loss per position bucket. Rendered as JSON, markdown and SVG.
import { formatBytes, formatTokens } from '../bench/report.js';
import { lineChartSvg, heatmapSvg } from './eval-svg.js';
import type { CaseResult } from './results.js';
import { wilsonInterval } from './score.js';
import { lmBucketOf } from './tasks/lm.js';

export interface AccuracyCell {
  config: string;
  task: string;
  length: number;
  depth: number | null;
  n: number;
  correct: number;
  accuracy: number;
  low: number;
  high: number;
  meanScore: number;
  secondsPerCase: number;
  cacheBytes: number;
}

export interface LossCell {
  config: string;
  /** Bucket start: positions [bucket, 2 * bucket) (1: positions below 64). */
  bucket: number;
  n: number;
  meanLoss: number;
}

export interface EvalReport {
  title: string;
  date: string;
  device: string;
  model: string;
  seed: number;
  accuracy: AccuracyCell[];
  byDepth: AccuracyCell[];
  loss: LossCell[];
}

function cellsOf(rows: CaseResult[], withDepth: boolean): AccuracyCell[] {
  const groups = new Map<string, CaseResult[]>();
  for (const r of rows) {
    const k = [r.config, r.task, r.length, withDepth ? r.depth : null].join('\u0001');
    groups.get(k)?.push(r) ?? groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => {
    const correct = g.filter((r) => r.correct).length;
    const [low, high] = wilsonInterval(correct, g.length);
    return {
      config: g[0].config,
      task: g[0].task,
      length: g[0].length,
      depth: withDepth ? g[0].depth : null,
      n: g.length,
      correct,
      accuracy: correct / g.length,
      low,
      high,
      meanScore: g.reduce((a, r) => a + r.score, 0) / g.length,
      secondsPerCase: g.reduce((a, r) => a + r.seconds, 0) / g.length,
      cacheBytes: Math.max(...g.map((r) => r.cacheBytes)),
    };
  });
}

export function buildReport(
  rows: CaseResult[],
  meta: Pick<EvalReport, 'title' | 'device' | 'model' | 'seed'>,
  date = new Date().toISOString(),
): EvalReport {
  const qa = rows.filter((r) => r.task !== 'lm');
  const losses = new Map<string, { config: string; bucket: number; sum: number; n: number }>();
  for (const r of rows)
    for (const [p, loss] of r.losses ?? []) {
      const bucket = lmBucketOf(p);
      const k = `${r.config}\u0001${bucket}`;
      const e = losses.get(k) ?? { config: r.config, bucket, sum: 0, n: 0 };
      e.sum += loss;
      e.n++;
      losses.set(k, e);
    }
  const order = (a: AccuracyCell, b: AccuracyCell) =>
    a.task.localeCompare(b.task) ||
    a.config.localeCompare(b.config) ||
    a.length - b.length ||
    (a.depth ?? 0) - (b.depth ?? 0);
  return {
    ...meta,
    date,
    accuracy: cellsOf(qa, false).sort(order),
    byDepth: cellsOf(
      qa.filter((r) => r.depth !== null),
      true,
    ).sort(order),
    loss: [...losses.values()]
      .map((e) => ({ config: e.config, bucket: e.bucket, n: e.n, meanLoss: e.sum / e.n }))
      .sort((a, b) => a.config.localeCompare(b.config) || a.bucket - b.bucket),
  };
}

const cell = (s: string) => s.replace(/\|/g, '\\|');
const uniq = <T>(xs: T[]) => [...new Set(xs)];

export function reportMarkdown(r: EvalReport): string {
  const out = [`## ${r.title}`, '', `${r.model} on ${r.device}, seed ${r.seed}, ${r.date}`, ''];
  for (const task of uniq(r.accuracy.map((c) => c.task))) {
    const cells = r.accuracy.filter((c) => c.task === task);
    const lengths = uniq(cells.map((c) => c.length)).sort((a, b) => a - b);
    out.push(`### ${task}: accuracy [95% interval] (cases)`, '');
    out.push(
      `| configuration | ${lengths.map(formatTokens).join(' | ')} |`,
      `| --- |${lengths.map(() => ' ---: |').join('')}`,
    );
    for (const config of uniq(cells.map((c) => c.config))) {
      const row = lengths.map((len) => {
        const c = cells.find((x) => x.config === config && x.length === len);
        return c ? `${c.accuracy.toFixed(2)} [${c.low.toFixed(2)}, ${c.high.toFixed(2)}] (${c.n})` : '—';
      });
      out.push(`| ${cell(config)} | ${row.join(' | ')} |`);
    }
    out.push('');
  }
  const costs = uniq(r.accuracy.map((c) => `${c.config}\u0001${c.length}`));
  if (costs.length > 0) {
    out.push(
      '### Cost: seconds per case and KV-cache bytes',
      '',
      '| configuration | length | s/case | KV cache |',
      '| --- | ---: | ---: | ---: |',
    );
    for (const k of costs.sort()) {
      const [config, len] = k.split('\u0001');
      const cs = r.accuracy.filter((c) => c.config === config && c.length === Number(len));
      const n = cs.reduce((a, c) => a + c.n, 0);
      const s = cs.reduce((a, c) => a + c.secondsPerCase * c.n, 0) / n;
      out.push(
        `| ${cell(config)} | ${formatTokens(Number(len))} | ${s.toFixed(2)} | ${formatBytes(Math.max(...cs.map((c) => c.cacheBytes)))} |`,
      );
    }
    out.push('');
  }
  if (r.loss.length > 0) {
    const buckets = uniq(r.loss.map((c) => c.bucket)).sort((a, b) => a - b);
    out.push('### Language modelling: mean next-token loss (nats) by position', '');
    out.push(`| configuration | ${buckets.map((b) => (b === 1 ? '<64' : formatTokens(b) + '+')).join(' | ')} |`);
    out.push(`| --- |${buckets.map(() => ' ---: |').join('')}`);
    for (const config of uniq(r.loss.map((c) => c.config)))
      out.push(
        `| ${cell(config)} | ${buckets
          .map((b) => r.loss.find((c) => c.config === config && c.bucket === b)?.meanLoss.toFixed(3) ?? '—')
          .join(' | ')} |`,
      );
    out.push('');
  }
  return out.join('\n');
}

/** File name -> SVG: accuracy per task, a heatmap per (task, configuration) with depths, the loss curve. */
export function reportSvgs(r: EvalReport): Map<string, string> {
  const files = new Map<string, string>();
  const slug = (s: string) => s.replace(/[^A-Za-z0-9.=-]+/g, '_').slice(0, 80);
  for (const task of uniq(r.accuracy.map((c) => c.task))) {
    const cells = r.accuracy.filter((c) => c.task === task);
    const series = uniq(cells.map((c) => c.config)).map((config) => ({
      name: config,
      points: cells
        .filter((c) => c.config === config)
        .map((c) => ({ x: c.length, y: c.accuracy, lo: c.low, hi: c.high })),
    }));
    files.set(
      `accuracy-${slug(task)}.svg`,
      lineChartSvg({
        title: `${task}: accuracy (95% Wilson interval)`,
        xLabel: 'prompt length (tokens, log2)',
        yLabel: 'accuracy',
        series,
        yRange: [0, 1],
      }),
    );
  }
  const configs = uniq(r.byDepth.map((c) => c.config));
  for (const task of uniq(r.byDepth.map((c) => c.task)))
    configs.forEach((config, i) => {
      const cells = r.byDepth.filter((c) => c.task === task && c.config === config && c.depth !== null);
      if (cells.length === 0) return;
      files.set(
        `heatmap-${slug(task)}-${i}.svg`,
        heatmapSvg(
          `${task}, ${config}`,
          cells.map((c) => ({ length: c.length, depth: c.depth!, accuracy: c.accuracy, n: c.n })),
        ),
      );
    });
  if (r.loss.length > 0) {
    const series = uniq(r.loss.map((c) => c.config)).map((config) => ({
      name: config,
      points: r.loss
        .filter((c) => c.config === config)
        .map((c) => ({ x: c.bucket === 1 ? 32 : c.bucket, y: c.meanLoss })),
    }));
    files.set(
      'loss.svg',
      lineChartSvg({
        title: 'next-token loss by position (held-back KJV)',
        xLabel: 'position (tokens, log2)',
        yLabel: 'loss (nats)',
        series,
      }),
    );
  }
  return files;
}
