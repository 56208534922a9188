// Tests for the benchmark report model, markdown table, SVG plot and progress bar (src/bench/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attentionFlops,
  formatBytes,
  formatTokens,
  toMarkdown,
  type BenchReport,
  type BenchRow,
} from '../src/bench/report.js';
import { toSvgPlot } from '../src/bench/svg-plot.js';
import { ProgressBar } from '../src/bench/progress.js';

function row(over: Partial<BenchRow>): BenchRow {
  return {
    source: 'longctx',
    method: 'flash',
    backend: 'webgpu',
    variant: 'portable',
    dtype: 'f32',
    seqLen: 1024,
    heads: 8,
    kvHeads: 8,
    headDim: 64,
    causal: true,
    ms: 1.23456,
    tflops: 2.345,
    peakBytes: 3 * 2 ** 20,
    status: 'ok',
    ...over,
  };
}

const report: BenchReport = {
  title: 'Attention <fwd> & co',
  device: 'Test GPU',
  date: '2025-01-01',
  rows: [
    row({ seqLen: 1024 }),
    row({ seqLen: 4096, ms: 10 }),
    row({ seqLen: 16384, ms: 150 }),
    row({ source: 'pytorch', method: 'sdpa-math', variant: undefined, backend: 'cuda', seqLen: 1024, ms: 0.5 }),
    row({
      source: 'pytorch',
      method: 'sdpa-math',
      variant: undefined,
      backend: 'cuda',
      seqLen: 131072,
      ms: null,
      tflops: null,
      peakBytes: null,
      status: 'oom',
      note: 'CUDA out of memory',
    }),
  ],
};

/** Checks that every opened tag is closed in order; returns the tag names seen. */
function balancedTags(xml: string): string[] {
  const stack: string[] = [],
    seen: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    seen.push(name);
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `unbalanced </${name}>`);
    else stack.push(name);
  }
  assert.deepEqual(stack, [], 'unclosed tags');
  return seen;
}

test('attentionFlops: 4*N^2*H*D, halved when causal', () => {
  assert.equal(attentionFlops(1024, 8, 64, false), 4 * 1024 * 1024 * 8 * 64);
  assert.equal(attentionFlops(1024, 8, 64, true), 2 * 1024 * 1024 * 8 * 64);
  assert.equal(attentionFlops(4096, 1, 128, false, 1), 4 * 4096 * 128); // decode step: Nq=1
  assert.equal(attentionFlops(4096, 1, 128, true, 1), 4 * 4096 * 128); // not halved when Nq != Nk
});

test('formatTokens and formatBytes', () => {
  assert.equal(formatTokens(1024), '1K');
  assert.equal(formatTokens(16384), '16K');
  assert.equal(formatTokens(131072), '128K');
  assert.equal(formatTokens(97), '97');
  assert.equal(formatTokens(1500), '1500');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(3 * 2 ** 20), '3.0 MiB');
  assert.equal(formatBytes(1.5 * 2 ** 30), '1.5 GiB');
});

test('toMarkdown: heading, one table row per report row, dashes for oom', () => {
  const md = toMarkdown(report);
  const lines = md.trim().split('\n');
  assert.match(lines[0], /^#+ .*Test GPU.*2025-01-01/);
  const tableRows = lines.filter((l) => l.startsWith('|'));
  assert.equal(tableRows.length, 2 + report.rows.length); // header + separator + rows
  const first = tableRows[2].split('|').map((c) => c.trim());
  assert.deepEqual(first.slice(1, 11), [
    'longctx',
    'flash',
    'portable',
    'webgpu',
    'f32',
    '1K',
    '1.23',
    '2.3',
    '3.0 MiB',
    'ok',
  ]);
  const oom = tableRows[tableRows.length - 1].split('|').map((c) => c.trim());
  assert.equal(oom[6], '128K');
  assert.deepEqual(oom.slice(7, 10), ['—', '—', '—']);
  assert.match(oom[10], /oom.*CUDA out of memory/);
});

test('toSvgPlot: balanced, one polyline per series, legend, escaped title', () => {
  const svg = toSvgPlot(report, { y: 'ms' });
  assert.ok(svg.startsWith('<svg'));
  const tags = balancedTags(svg);
  assert.equal(tags.filter((t) => t === 'polyline' || t === 'path').length, 2); // oom row excluded
  assert.ok(svg.includes('longctx/flash/portable/f32'));
  assert.ok(svg.includes('pytorch/sdpa-math/f32'));
  assert.ok(svg.includes('Attention &lt;fwd&gt; &amp; co'));
  assert.ok(!svg.includes('<fwd>'));
  for (const t of ['>1K<', '>4K<', '>16K<']) assert.ok(svg.includes(t), `x tick ${t}`);
  const custom = toSvgPlot(report, { y: 'tflops', title: 'a < b' });
  assert.ok(custom.includes('a &lt; b'));
  balancedTags(custom);
});

test('toSvgPlot: empty and single-point reports', () => {
  const empty = toSvgPlot({ ...report, rows: [report.rows[4]] }, { y: 'ms' });
  assert.ok(empty.startsWith('<svg') && empty.includes('no data'));
  assert.ok(!balancedTags(empty).includes('polyline'));
  const one = toSvgPlot({ ...report, rows: [report.rows[0]] }, { y: 'peakBytes' });
  assert.equal(balancedTags(one).filter((t) => t === 'polyline').length, 1);
  assert.ok(!/NaN|Infinity/.test(one));
});

function fakeStream(isTTY: boolean) {
  const out: string[] = [];
  const stream = {
    isTTY,
    write: (s: string) => {
      out.push(s);
      return true;
    },
  };
  return { out, stream: stream as unknown as NodeJS.WriteStream };
}

function captureStdout<T>(fn: () => T): { result: T; written: number } {
  const orig = process.stdout.write;
  let written = 0;
  process.stdout.write = ((..._args: unknown[]) => {
    written++;
    return true;
  }) as typeof process.stdout.write;
  try {
    return { result: fn(), written };
  } finally {
    process.stdout.write = orig;
  }
}

test('ProgressBar: non-TTY prints one line per tick, never to stdout', () => {
  const { out, stream } = fakeStream(false);
  const { written } = captureStdout(() => {
    const bar = new ProgressBar(10, 'bench', stream);
    for (let i = 0; i < 3; i++) bar.tick(`N=${i}`);
    bar.done();
  });
  assert.equal(written, 0);
  assert.equal(out.length, 3);
  assert.ok(out.every((s) => s.endsWith('\n') && !s.includes('\r')));
  assert.match(out[2], /^bench \[#+-+\] 3\/10 N=2\n$/);
});

test('ProgressBar: TTY rewrites in place with \\r and ends with a newline', () => {
  const { out, stream } = fakeStream(true);
  const { written } = captureStdout(() => {
    const bar = new ProgressBar(2, 'run', stream);
    bar.tick('long detail text');
    bar.tick();
    bar.done();
  });
  assert.equal(written, 0);
  assert.equal(out.length, 3);
  assert.ok(out[0].startsWith('\r') && out[1].startsWith('\r'));
  assert.match(out[1], /^\rrun \[#+\] 2\/2 +$/); // padded over the longer previous line
  assert.equal(out[2], '\n');
});

test('attended pairs: exact methods count all causal pairs, windows only their band', async () => {
  const { attendedPairs } = await import('../src/bench/attention-bench.js');
  const { parseMethodSpec } = await import('../src/attention/spec.js');
  assert.equal(attendedPairs(parseMethodSpec('flash'), 4, true), 10);
  assert.equal(attendedPairs(parseMethodSpec('flash'), 4, false), 16);
  // Window left=1: rows see 1, 2, 2, 2 keys.
  assert.equal(attendedPairs(parseMethodSpec('window:left=1'), 4, true), 7);
  assert.equal(attendedPairs(parseMethodSpec('window:left=100'), 4, true), 10);
  // Hybrid every=2 of flash (10) and window left=1 (7): mean 8.5 per layer.
  assert.equal(attendedPairs(parseMethodSpec('hybrid:every=2,window=1'), 4, true), 8.5);
});
