// longctx beside a TypeScript peer (onnxruntime-web, ort-runner.ts) on the same weights in the same process:
// (1) do they agree? the first greedy tokens of both on the same prompts, and where they part, the logit gap
// (how far longctx's own logits put the peer's choice below its own); (2) how fast, per context: prefill
// tokens/s, decode tokens/s, peak GPU memory, and where each stops (the error it stops with).
import type { Decoder } from '../../model/forward/decoder-cpu.js';
import type { ModelBenchRow } from '../model-bench.js';
import type { OrtPeer } from './ort-runner.js';

export interface Agreement {
  promptTokens: number;
  longctx: number[];
  peer: number[];
  /** Index of the first generated token where they differ; absent when all agree. */
  firstDifference?: number;
  /** At that index: longctx's logit of its own choice minus its logit of the peer's choice. */
  logitGap?: number;
}

const argmax = (row: Float32Array) => {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
};

/** longctx's greedy tokens after `prompt` on a reset decoder, with each step's logits. */
export async function longctxGreedy(decoder: Decoder, prompt: readonly number[], steps: number) {
  decoder.reset();
  let logits = await decoder.forward(prompt);
  const ids: number[] = [];
  const rows: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    rows.push(Float32Array.from(logits));
    ids.push(argmax(logits));
    if (i + 1 < steps) logits = await decoder.forward([ids[i]]);
  }
  return { ids, logits: rows };
}

/** The first `steps` greedy tokens of both engines on each prompt. */
export async function compareGreedy(
  decoder: Decoder,
  peer: OrtPeer,
  prompts: number[][],
  steps: number,
): Promise<Agreement[]> {
  const out: Agreement[] = [];
  for (const prompt of prompts) {
    const ours = await longctxGreedy(decoder, prompt, steps);
    const theirs = await peer.greedy(prompt, steps);
    const a: Agreement = { promptTokens: prompt.length, longctx: ours.ids, peer: theirs.ids };
    const i = ours.ids.findIndex((id, k) => id !== theirs.ids[k]);
    if (i >= 0) {
      a.firstDifference = i;
      a.logitGap = ours.logits[i][ours.ids[i]] - ours.logits[i][theirs.ids[i]];
    }
    out.push(a);
  }
  return out;
}

/** Prompts of `tokens` tokens: BOS, then the last tokens of each text (its question stays at the end). */
export function tailPrompts(texts: string[], encode: (s: string) => number[], tokens: number, bos = 0): number[][] {
  return texts.map((t) => {
    const ids = encode(t);
    return [bos, ...ids.slice(Math.max(0, ids.length - (tokens - 1)))];
  });
}

/** One peer run at a context: a prefill of fixed ids, then `decode` greedy steps (timed after the first). */
export async function benchPeerCase(peer: OrtPeer, vocab: number, context: number, decode: number) {
  const row: ModelBenchRow = {
    source: 'onnxruntime-web',
    method: 'GroupQueryAttention',
    backend: peer.backend,
    storage: peer.dtype,
    context,
    status: 'ok',
  };
  peer.meter?.resetPeak();
  try {
    const ids = Array.from({ length: context }, (_, i) => (i * 7919 + 13) % vocab);
    const r = await peer.greedy(ids, decode + 1);
    row.prefillSeconds = r.prefillSeconds;
    row.prefillTokensPerSecond = context / r.prefillSeconds;
    row.decodeSteps = r.decodeSteps;
    row.decodeTokensPerSecond = r.decodeSteps / r.decodeSeconds;
    row.peakBytes = peer.meter ? peer.meter.peakBytes : null;
  } catch (e) {
    const m = String((e as Error).message ?? e);
    row.status = /memory|allocat|out of|OOM|too large|exceed/i.test(m) ? 'oom' : 'error';
    row.note = m.split('\n')[0].slice(0, 200);
  }
  return row;
}

/** Markdown lines for the agreement check. */
export function agreementMarkdown(title: string, rows: Agreement[]): string {
  const lines = [
    `### ${title}`,
    '',
    '| prompt tokens | same tokens | first difference | logit gap | longctx ids |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const a of rows) {
    const same = a.firstDifference ?? a.longctx.length;
    lines.push(
      `| ${a.promptTokens} | ${same}/${a.longctx.length} | ${a.firstDifference ?? '—'} | ` +
        `${a.logitGap?.toFixed(4) ?? '—'} | ${a.longctx.join(' ')} |`,
    );
  }
  return lines.join('\n') + '\n';
}
