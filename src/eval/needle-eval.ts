// The DSA indexer and CCA's cores as retrieval (issue 13, item 3; `longctx eval-mass --needle passkey`):
// needle cases from the eval's own task generator (the same prompts as `longctx eval --seed S`), each
// prefilled with exact attention (dense on the CPU, flash on WebGPU) while eval/needle-capture.ts keeps what
// is needed; then at the answer position (the last prompt token), per layer, eval/needle-retrieval.ts
// measures where the asked value's tokens stand. Shares of cases come with Wilson 95% intervals.
import { uniformSchedule } from '../attention/sparse.js';
import { InputError } from '../errors.js';
import { DSA_LOCAL, DSA_SINKS } from '../model/caches/dsa-layer.js';
import {
  indexKeysInto,
  indexQueries,
  indexScoresRow,
  layerIndexer,
  trainedIndexQueries,
  trainedIndexScoresRow,
  trainingFreeIndexer,
} from '../model/caches/dsa-indexer.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import { argmax } from '../model/generation/sampler.js';
import type { LoadedModel } from '../model/types.js';
import type { Device } from '../runtime/device.js';
import type { QaCase, TaskContext } from './case.js';
import { NeedleCapture } from './needle-capture.js';
import { dsaName, type KeyScorer, measureNeedleLayer, type NeedleLayerResult } from './needle-retrieval.js';
import { gridCases } from './runner.js';
import { wilsonInterval } from './score.js';
import { taskByName } from './tasks/index.js';

export interface NeedleCcaOption {
  name: string;
  group: number;
  window: number;
}

export interface NeedleEvalOptions {
  task: string;
  contexts: number[];
  cases: number;
  seed: number;
  /** Top-k budgets k. */
  budgets: number[];
  /** Rotary pairs per index head of the training-free indexers. */
  pairs: number[];
  cca: NeedleCcaOption[];
  chunk: number;
}

/** One case: where its needle was, whether the model's first answer token was right, and each layer's result. */
export interface NeedleCaseRecord {
  context: number;
  index: number;
  seed: number;
  span: [number, number];
  /** The model's greedy next token after the prompt is the value's first token as the needle has it. */
  firstToken: boolean;
  layers: NeedleLayerResult[];
}

/** Share k / n with its Wilson 95% interval. */
export interface Share {
  k: number;
  n: number;
  share: number;
  low: number;
  high: number;
}

export interface NeedleHitRow {
  context: number;
  layer: number;
  selector: string;
  budget: number;
  all: Share;
  any: Share;
  /** Mean over cases of the exact mass on the value tokens, and of the share of it the selector keeps. */
  needleMass: number;
  kept: number;
}

export interface NeedleCcaRow {
  context: number;
  layer: number;
  cca: string;
  cases: number;
  inWindow: Share;
  /** Means over cases (exact attention, then CCA's own softmax). */
  coreMass: number;
  windowMass: number;
  ccaCoreMass: number;
  ccaWindowMass: number;
  /** Over the cases with a value token behind the window. */
  top1: Share;
}

export interface NeedleProgress {
  done: number[];
  hits: NeedleHitRow[];
  cca: NeedleCcaRow[];
  /** Per context, the cases whose first answer token the model got right. */
  firstToken: Array<{ context: number } & Share>;
  records: NeedleCaseRecord[];
  prefillSeconds: number;
  indexer: string;
  selectors: string[];
}

export interface NeedleEvents {
  onCase?: (r: NeedleCaseRecord, seconds: number) => void;
  /** Everything so far after each context, so a run cut short keeps the shorter contexts. */
  onContext?: (p: NeedleProgress) => void;
}

export function share(k: number, n: number): Share {
  const [low, high] = wilsonInterval(k, n);
  return { k, n, share: n > 0 ? k / n : 0, low, high };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : 0);

/** Runs every context's cases; `model` carries the RoPE scaling to measure under. */
export async function needleRetrieval(
  device: Device,
  model: LoadedModel,
  ctx: TaskContext,
  o: NeedleEvalOptions,
  events: NeedleEvents = {},
): Promise<NeedleProgress> {
  const c = model.config;
  const L = c.layers;
  const capacity = Math.max(...o.contexts);
  const hasTrained = model.weights.layers.some((l) => l.indexer);
  const trained = hasTrained ? model.weights.layers.map((l) => layerIndexer(l, c)) : undefined;
  const capture = new NeedleCapture(c, { capacity, groups: [...new Set(o.cca.map((x) => x.group))], trained });
  const free = model.weights.layers.map((l) =>
    o.pairs.map((P) => ({ P, ix: trainingFreeIndexer(l, c, { pairsPerHead: P }) })),
  );
  const indexKeys = free.map((row) => row.map(({ ix }) => new Float32Array(capacity * ix.dim)));
  const score = new Float32Array(capacity);
  const selectors = [...o.pairs.map((P) => `indexer:${P}`), ...(hasTrained ? ['trained'] : [])];
  const progress: NeedleProgress = {
    done: [],
    hits: [],
    cca: [],
    firstToken: [],
    records: [],
    prefillSeconds: 0,
    indexer: free[0][0].ix.description,
    selectors: ['oracle', ...selectors.flatMap((s) => [s, dsaName(s)])],
  };
  const task = taskByName(o.task);
  const decoder = await createDecoder(device, model, uniformSchedule(device.gpu ? 'flash' : 'dense'), {
    maxTokens: capacity,
    chunk: o.chunk,
    observe: capture.observe,
  });
  try {
    for (const context of o.contexts) {
      const grid = {
        configs: [],
        tasks: [task.name],
        lengths: [context],
        depths: [],
        casesPerCell: o.cases,
        seed: o.seed,
      };
      const records: NeedleCaseRecord[] = [];
      for (const planned of gridCases(grid, ctx)) {
        const made = planned.make();
        const span = made.kind === 'qa' ? made.answerSpans?.[0] : undefined;
        if (!span) throw new InputError(`task '${o.task}' has no needle span to look for`);
        const qa = made as QaCase;
        const ids = qa.turns[0].ids;
        const t0 = performance.now();
        decoder.reset();
        capture.reset(ids.length - 1);
        const logits = await decoder.forward(ids);
        const seconds = (performance.now() - t0) / 1000;
        progress.prefillSeconds += seconds;
        if (!capture.complete) throw new InputError('the observer did not see the answer position in every layer');
        const n = ids.length;
        const layers: NeedleLayerResult[] = [];
        for (let layer = 0; layer < L; layer++) {
          const keys = capture.keys[layer];
          const query = capture.query[layer];
          const scorers: KeyScorer[] = free[layer].map(({ P, ix }, i) => {
            // The keys' head stride is the capacity, so every row is indexed (rows past n are not scored).
            indexKeysInto(ix, keys, capacity, c.headDim, indexKeys[layer][i], 0);
            const s = new Float32Array(n);
            indexScoresRow(ix, indexQueries(ix, query, c.heads, 1, c.headDim).q, 1, 0, indexKeys[layer][i], n, s);
            return { name: `indexer:${P}`, score: s };
          });
          if (trained) {
            const { q, w } = trainedIndexQueries(trained[layer], capture.input[layer], 1, n - 1);
            trainedIndexScoresRow(trained[layer], q, w, capture.trainedKeys[layer], n, score);
            scorers.push({ name: 'trained', score: score.slice(0, n) });
          }
          layers.push(
            measureNeedleLayer({
              shape: { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim },
              n,
              keys,
              stride: capacity,
              query,
              span,
              scorers,
              budgets: o.budgets,
              sinks: DSA_SINKS,
              local: DSA_LOCAL,
              cca: o.cca.map((x) => ({
                ...x,
                keys: capture.cores.get(x.group)![layer],
                stride: Math.floor(capacity / x.group),
              })),
            }),
          );
        }
        const record = {
          context,
          index: qa.index,
          seed: qa.seed,
          span,
          firstToken: argmax(logits) === ids[span[0]],
          layers,
        };
        records.push(record);
        events.onCase?.(record, seconds);
      }
      progress.records.push(...records);
      summarise(progress, context, records, o);
      progress.done.push(context);
      events.onContext?.(progress);
    }
  } finally {
    decoder.destroy();
  }
  return progress;
}

function summarise(p: NeedleProgress, context: number, records: NeedleCaseRecord[], o: NeedleEvalOptions): void {
  const layers = records[0]?.layers.length ?? 0;
  p.firstToken.push({ context, ...share(records.filter((r) => r.firstToken).length, records.length) });
  for (let layer = 0; layer < layers; layer++) {
    const results = records.map((r) => r.layers[layer]);
    const needleMass = mean(results.map((r) => r.needleMass));
    for (const selector of p.selectors)
      for (const budget of o.budgets) {
        const hits = results.map((r) => r.hits.find((h) => h.selector === selector && h.budget === budget)!);
        p.hits.push({
          context,
          layer,
          selector,
          budget,
          all: share(hits.filter((h) => h.all).length, hits.length),
          any: share(hits.filter((h) => h.any).length, hits.length),
          needleMass,
          kept: mean(hits.map((h) => h.kept)),
        });
      }
    for (const { name } of o.cca) {
      const hits = results.map((r) => r.cca.find((x) => x.name === name)!);
      const behind = hits.filter((h) => h.top1 !== null);
      p.cca.push({
        context,
        layer,
        cca: name,
        cases: hits.length,
        inWindow: share(hits.filter((h) => h.inWindow).length, hits.length),
        coreMass: mean(hits.map((h) => h.coreMass)),
        windowMass: mean(hits.map((h) => h.windowMass)),
        ccaCoreMass: mean(hits.map((h) => h.ccaCoreMass)),
        ccaWindowMass: mean(hits.map((h) => h.ccaWindowMass)),
        top1: share(behind.filter((h) => h.top1).length, behind.length),
      });
    }
  }
}
