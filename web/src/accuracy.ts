// Accuracy: the `longctx eval` report (docs/eval-h200/report.json, copied into the page's assets at build time)
// as a line plot of accuracy against context length, one line per configuration, for a chosen task; and a
// small needle-in-a-haystack eval run live in the page with the form's methods.
import type { Model } from '../../src/index.js';
import { createPageSession, type SessionChoice } from './engine.js';

export interface ReportCell {
  config: string;
  task: string;
  length: number;
  accuracy: number;
  n: number;
}

export interface EvalReport {
  title: string;
  device: string;
  accuracy: ReportCell[];
}

const PALETTE = ['#1f4e99', '#d1495b', '#2e933c', '#edae49', '#6f2dbd', '#00798c', '#8d6a9f', '#444'];

export function reportTasks(r: EvalReport): string[] {
  return [...new Set(r.accuracy.map((c) => c.task))];
}

/** An SVG line chart (log2 length on x, accuracy 0..1 on y) of one task's cells. */
export function accuracySvg(r: EvalReport, task: string): string {
  const cells = r.accuracy.filter((c) => c.task === task);
  const configs = [...new Set(cells.map((c) => c.config))];
  const lengths = [...new Set(cells.map((c) => c.length))].sort((a, b) => a - b);
  const [W, H, left, top, bottom] = [520, 220, 40, 10, 30];
  const legendTop = H + 4;
  const lx = (len: number) =>
    left +
    ((Math.log2(len) - Math.log2(lengths[0])) / Math.max(1e-9, Math.log2(lengths.at(-1)! / lengths[0]))) *
      (W - left - 30);
  const ly = (a: number) => top + (1 - a) * (H - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${legendTop + configs.length * 16}" role="img" aria-label="accuracy of ${task} by context length">`,
    `<line x1="${left}" y1="${ly(0)}" x2="${W - 30}" y2="${ly(0)}" stroke="#999"/>`,
    `<line x1="${left}" y1="${ly(0)}" x2="${left}" y2="${ly(1)}" stroke="#999"/>`,
    `<text x="4" y="${ly(1) + 4}" font-size="10">1.0</text><text x="4" y="${ly(0)}" font-size="10">0</text>`,
  ];
  for (const len of lengths)
    parts.push(`<text x="${lx(len) - 10}" y="${H - 12}" font-size="10">${len >= 1024 ? `${len / 1024}K` : len}</text>`);
  configs.forEach((config, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = cells
      .filter((c) => c.config === config)
      .sort((a, b) => a.length - b.length)
      .map((c) => `${lx(c.length).toFixed(1)},${ly(c.accuracy).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${color}"/>`);
    parts.push(
      `<text x="${left}" y="${legendTop + 12 + i * 16}" font-size="12" fill="${color}">${escapeXml(config)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const FILLER = [
  'The sun was warm and the birds sang in the tall trees.',
  'A little dog ran across the green grass to find a ball.',
  'Mom made soup in the big pot and the kitchen smelled good.',
  'The children played with blocks and built a red tower.',
];

export interface NeedleResult {
  depth: number;
  tokens: number;
  answer: string;
  correct: boolean;
  prefillTokensPerSecond: number;
}

/** Needle in a haystack: a 7-digit pass key hidden at depths 10/50/90% of ~`tokens` tokens of filler, asked for after it. */
export async function runNeedleEval(
  model: Model,
  choice: SessionChoice,
  tokens: number,
  onResult: (r: NeedleResult) => void,
  signal: AbortSignal,
): Promise<NeedleResult[]> {
  const results: NeedleResult[] = [];
  for (const [i, depth] of [0.1, 0.5, 0.9].entries()) {
    const secret = String(1_000_000 + ((i * 7_919_113 + 4_271_003) % 9_000_000));
    const word = ['bramble', 'lantern', 'thistle'][i];
    const sentences: string[] = [];
    let n = 0;
    for (let s = 0; n < tokens; s++) {
      const text = FILLER[s % FILLER.length];
      sentences.push(text);
      n += model.tokenizer.encode(` ${text}`).length;
    }
    // passkey-2k's own phrasing (test/fixtures/passkey-2k/README.md), which that model was trained to answer.
    sentences.splice(Math.floor(sentences.length * depth), 0, `The pass key for ${word} is ${secret}.`);
    const prompt = `${sentences.join(' ')}\nWhat is the pass key for ${word}? The pass key for ${word} is`;
    const session = await createPageSession(model, { ...choice, contextSize: n + 96 });
    try {
      const g = session.generate(prompt, { maxTokens: 12, signal });
      const answer = await g.text();
      const r = g.result!;
      const result = {
        depth,
        tokens: r.promptTokens,
        answer,
        correct: answer.includes(secret),
        prefillTokensPerSecond: r.promptTokens / Math.max(1e-9, r.prefillSeconds),
      };
      results.push(result);
      onResult(result);
    } finally {
      session.dispose();
    }
  }
  return results;
}
