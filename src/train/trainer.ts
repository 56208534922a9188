// DeepSeek-V3.2's indexer warm-up on a frozen Llama-family model: every step cuts `batch` sequences of
// `context` tokens (BOS first) from the training tokens, runs the frozen model once per sequence with exact
// attention (the CPU decoder, or the WebGPU one with --backend webgpu: its observe hook hands over each layer's
// h, q and k either way), and trains one indexer
// per layer by KL(p || softmax(I)) (train/indexer-grad.ts, or the whole sequence on WebGPU, the target p from
// the layer's q and k included: indexer-grad-gpu.ts)
// with AdamW, warm-up + cosine and gradient clipping.
// The data order depends only on (seed, step), so a run resumed from a checkpoint sees what it would have.
import { uniformSchedule } from '../attention/sparse.js';
import { InputError } from '../errors.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import type { LoadedModel } from '../model/types.js';
import { cpuDevice, type Device } from '../runtime/device.js';
import { adamWState, adamWStep, clipGradient, scheduledLr, type AdamWSettings, type AdamWState } from './adamw.js';
import { attentionTarget, type LayerActivations } from './attention-target.js';
import { cpuIndexerGradient, type IndexerGradient } from './indexer-grad-gpu.js';
import {
  indexerGeometry,
  initIndexerParams,
  paramLayout,
  seededNormal,
  type IndexerGeometry,
} from './indexer-params.js';

export interface TrainIndexerOptions {
  steps: number;
  context: number;
  topk: number;
  heads: number;
  dim: number;
  seed: number;
  /** Sequences per step. */
  batch: number;
  warmup: number;
  adamw: AdamWSettings;
}

export interface IndexerTrainingState {
  /** Steps done. */
  step: number;
  geometry: IndexerGeometry;
  /** One parameter vector and optimiser state per layer. */
  params: Float64Array[];
  optim: AdamWState[];
}

export interface StepReport {
  step: number;
  steps: number;
  /** Mean KL over layers and queries of this step's sequences. */
  loss: number;
  /** Mean target mass inside the indexer's top-k (queries seeing more than k keys), over layers. */
  mass: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  seconds: number;
}

export function freshTrainingState(model: LoadedModel, o: TrainIndexerOptions): IndexerTrainingState {
  const geometry = indexerGeometry(model.config, o.heads, o.dim);
  const params = model.weights.layers.map((_, i) => initIndexerParams(geometry, o.seed * 7919 + i));
  return { step: 0, geometry, params, optim: params.map((p) => adamWState(p.length)) };
}

/** Runs the frozen model over `tokens` (one sequence from position 0, on `device`'s decoder) and keeps each
 * layer's h, q and k. */
export async function frozenActivations(
  model: LoadedModel,
  tokens: number[],
  device: Device = cpuDevice,
): Promise<LayerActivations[]> {
  const c = model.config;
  const [Hq, Hkv, D, L] = [c.heads, c.kvHeads, c.headDim, tokens.length];
  const acts = model.weights.layers.map(() => ({
    q: new Float32Array(Hq * L * D),
    k: new Float32Array(Hkv * L * D),
    h: new Float32Array(L * c.hiddenSize),
  }));
  const observe = (layer: number, pos: number, T: number, q: Float32Array, k: Float32Array, h?: Float32Array) => {
    if (!h) throw new InputError('the decoder did not hand over the attention input h (train with --backend cpu)');
    const a = acts[layer];
    for (let x = 0; x < Hq; x++) a.q.set(q.subarray(x * T * D, (x + 1) * T * D), (x * L + pos) * D);
    for (let x = 0; x < Hkv; x++) a.k.set(k.subarray(x * T * D, (x + 1) * T * D), (x * L + pos) * D);
    a.h.set(h.subarray(0, T * c.hiddenSize), pos * c.hiddenSize);
  };
  const decoder = await createDecoder(device, model, uniformSchedule('dense'), {
    maxTokens: L,
    // The GPU decoder takes a longer chunk (fewer submits and observer reads); the result does not depend on it.
    chunk: device.gpu ? 512 : 128,
    observe,
  });
  try {
    await decoder.forward(tokens);
  } finally {
    decoder.destroy();
  }
  return acts;
}

/** The step's sequences: `batch` windows of context - 1 training tokens after a BOS, at offsets drawn from (seed, step). */
export function stepSequences(ids: number[], bos: number, o: TrainIndexerOptions, step: number): number[][] {
  const span = o.context - 1;
  if (ids.length < span)
    throw new InputError(`the training text gives ${ids.length} tokens, fewer than the context ${o.context} - 1`);
  const { uniform } = seededNormal((o.seed * 1000003 + step * 7907 + 1) >>> 0);
  return Array.from({ length: o.batch }, () => {
    const at = Math.floor(uniform() * (ids.length - span + 1));
    return [bos, ...ids.slice(at, at + span)];
  });
}

/** Trains from `state` (fresh or resumed) until o.steps; onStep after every step (checkpoints hook in there). */
export async function trainIndexers(
  model: LoadedModel,
  ids: number[],
  o: TrainIndexerOptions,
  state: IndexerTrainingState,
  onStep: (r: StepReport, s: IndexerTrainingState) => void | Promise<void>,
  /** Where the loss and gradient run (train/indexer-grad-gpu.ts): the CPU's float64 by default. */
  gradient: IndexerGradient = cpuIndexerGradient,
  /** Where the frozen model runs: the CPU decoder by default (on the GPU the step no longer waits on it). */
  frozenDevice: Device = cpuDevice,
): Promise<IndexerTrainingState> {
  const c = model.config;
  const g = state.geometry;
  const bos = c.bosTokenId ?? model.tokenizer.bosId ?? 1;
  const decayUntil = paramLayout(g).gamma;
  const t0 = performance.now();
  let tokens = 0;
  for (; state.step < o.steps; ) {
    const step = state.step;
    const grads = state.params.map((p) => new Float64Array(p.length));
    let [loss, massSum, massCount] = [0, 0, 0];
    for (const seq of stepSequences(ids, bos, o, step)) {
      const acts = await frozenActivations(model, seq, frozenDevice);
      const L = seq.length;
      for (const [layer, a] of acts.entries()) {
        const target = attentionTarget(a, L, c.heads, c.kvHeads, c.headDim);
        const r = await gradient.lossGrad(
          g,
          state.params[layer],
          {
            h: a.h,
            L,
            target,
            topk: o.topk,
            attention: { ...a, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim },
          },
          grads[layer],
          1 / o.batch,
        );
        loss += r.loss / (o.batch * c.layers);
        massSum += r.massSum;
        massCount += r.massCount;
      }
      tokens += L;
    }
    const lr = scheduledLr(o.adamw.lr, step, o.steps, o.warmup);
    let gradNorm = 0;
    state.params.forEach((p, layer) => {
      gradNorm = Math.max(gradNorm, clipGradient(grads[layer], o.adamw.clip));
      adamWStep(p, grads[layer], state.optim[layer], o.adamw, lr, step + 1, decayUntil);
    });
    state.step++;
    const seconds = (performance.now() - t0) / 1000;
    await onStep(
      {
        step: state.step,
        steps: o.steps,
        loss,
        mass: massCount > 0 ? massSum / massCount : 1,
        lr,
        gradNorm,
        tokensPerSecond: tokens / seconds,
        seconds,
      },
      state,
    );
  }
  return state;
}
