// `longctx train-indexer`: DeepSeek-V3.2's indexer warm-up on a frozen model (src/train/), then the trained
// indexers written where the loader reads them, and their captured attention mass on held-back text measured
// as `longctx eval-mass` does (src/eval/dsa-mass.ts): trained against training-free, oracle and recent.
import { existsSync } from 'node:fs';
import { InputError } from '../errors.js';
import { dsaAttentionMass, dsaMassMarkdown } from '../eval/dsa-mass.js';
import { loadModel } from '../model/load/load.js';
import { acquireDevice, cpuDevice } from '../runtime/device.js';
import { indexerGradientFor } from '../train/indexer-grad-gpu.js';
import { loadCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { defaultIndexerOut, saveTrainedIndexers } from '../train/save-indexers.js';
import { freshTrainingState, trainIndexers, type TrainIndexerOptions } from '../train/trainer.js';
import { readTrainingText } from '../train/training-text.js';
import { backendOption, intList, numberOption, parse, required } from './args.js';

export const TRAIN_INDEXER_USAGE = `usage: longctx train-indexer --model M --data TEXT_OR_DIR --steps N [--context 512] [--topk 64]
                        [--heads 4 --head-dim D_I] [--lr 1e-3] [--warmup N/10] [--batch 1] [--clip 1] [--weight-decay 0]
                        [--seed 1] [--held-back 0.1] [--max-chars N] [--eval-samples 64] [--out FILE]
                        [--checkpoint FILE] [--checkpoint-every 50] [--resume] [--backend cpu|webgpu|auto]
  Freezes the model and trains one DSA lightning indexer per layer (DeepSeek-V3.2's form: q_I = W_q h,
  k_I = LayerNorm(W_k h), w = W_proj h, RoPE on the first head-dim channels) by KL(p || softmax(I)), p the
  model's attention summed over heads, its gradient on the CPU in float64 (default) or, with --backend webgpu,
  its O(L^2) part on the GPU in f32 (auto: the GPU when one is found); writes a GGUF copy with blk.N.indexer.* (default
  <model>-indexer.gguf) or, for a HF directory, <dir>/indexer.safetensors; then reports the captured mass at
  top-k on the held-back tail of the text (trained, dsa:trained, training-free indexer:4, oracle, recent).`;

export async function trainIndexerCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    data: { type: 'string' },
    steps: { type: 'string' },
    context: { type: 'string' },
    topk: { type: 'string' },
    heads: { type: 'string' },
    'head-dim': { type: 'string' },
    lr: { type: 'string' },
    warmup: { type: 'string' },
    batch: { type: 'string' },
    clip: { type: 'string' },
    'weight-decay': { type: 'string' },
    seed: { type: 'string' },
    'held-back': { type: 'string' },
    'max-chars': { type: 'string' },
    'eval-samples': { type: 'string' },
    out: { type: 'string' },
    checkpoint: { type: 'string' },
    'checkpoint-every': { type: 'string' },
    resume: { type: 'boolean' },
    backend: { type: 'string' },
  });
  // The CPU unless asked (the frozen model runs on the CPU decoder either way: its observe hook).
  const backend = v.backend === undefined ? 'cpu' : backendOption(v);
  const modelPath = required(v, 'model');
  const model = loadModel(modelPath);
  const c = model.config;
  const int = (name: string, fallback: number) => intList(v, name, [fallback])[0];
  const steps = int('steps', 0);
  if (v.steps === undefined) throw new InputError('--steps is required');
  const context = int('context', Math.min(512, c.contextLength));
  const o: TrainIndexerOptions = {
    steps,
    context,
    topk: int('topk', 64),
    heads: int('heads', 4),
    dim: int('head-dim', Math.max(c.headDim, 32)),
    seed: int('seed', 1),
    batch: int('batch', 1),
    warmup: v.warmup === undefined ? Math.max(1, Math.ceil(steps / 10)) : int('warmup', 1),
    adamw: {
      lr: numberOption(v, 'lr') ?? 1e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: numberOption(v, 'weight-decay') ?? 0,
      clip: numberOption(v, 'clip') ?? 1,
    },
  };
  const out = typeof v.out === 'string' ? v.out : defaultIndexerOut(modelPath);
  const checkpoint = typeof v.checkpoint === 'string' ? v.checkpoint : `${out}.ckpt.safetensors`;
  const every = int('checkpoint-every', 50);
  const maxChars = v['max-chars'] === undefined ? undefined : int('max-chars', 1);
  const text = readTrainingText(required(v, 'data'), model.tokenizer, numberOption(v, 'held-back') ?? 0.1, maxChars);
  process.stderr.write(
    `${text.description}: ${text.train.length} training tokens, ${text.heldBack.length} held back\n`,
  );
  let state = freshTrainingState(model, o);
  if (v.resume) {
    if (!existsSync(checkpoint)) throw new InputError(`--resume: no checkpoint at ${checkpoint}`);
    state = loadCheckpoint(checkpoint, model, o);
    process.stderr.write(`resuming from ${checkpoint} at step ${state.step}\n`);
  }
  const device = await acquireDevice(backend);
  const gradient = indexerGradientFor(device);
  if (device.gpu) process.stderr.write(`indexer gradients on ${gradient.name}\n`);
  const t0 = performance.now();
  const report = Math.max(1, Math.floor(steps / 50));
  try {
    await trainIndexers(
      model,
      text.train,
      o,
      state,
      (r, s) => {
        if (r.step % report === 0 || r.step === r.steps)
          process.stderr.write(
            `step ${r.step}/${r.steps} loss ${r.loss.toFixed(4)} mass@${o.topk} ${r.mass.toFixed(3)} lr ${r.lr.toExponential(2)} ` +
              `|g| ${r.gradNorm.toFixed(3)} ${r.tokensPerSecond.toFixed(0)} tokens/s ${r.seconds.toFixed(1)} s\n`,
          );
        if (r.step % every === 0 || r.step === r.steps) saveCheckpoint(checkpoint, s, o, modelPath);
      },
      gradient,
      device,
    );
  } finally {
    gradient.destroy();
    device.destroy();
  }
  const seconds = (performance.now() - t0) / 1000;
  saveTrainedIndexers(modelPath, state, out);
  process.stderr.write(
    `wrote ${out} (H_I ${o.heads}, D_I ${o.dim}, ${c.layers} layers) after ${seconds.toFixed(1)} s\n`,
  );
  // 0 skips the measurement (intList takes only positive values).
  const samples = numberOption(v, 'eval-samples') ?? 64;
  if (!Number.isInteger(samples) || samples < 0)
    throw new InputError(`--eval-samples must be a non-negative integer, got '${v['eval-samples']}'`);
  if (samples === 0 || text.heldBack.length < context) return;
  const trained = loadModel(out.endsWith('.gguf') ? out : modelPath);
  const ids = [c.bosTokenId ?? 1, ...text.heldBack];
  const budgets = [o.topk, 2 * o.topk].filter((b) => b < context);
  const p = await dsaAttentionMass(cpuDevice, trained, ids, {
    contexts: [context],
    samples,
    budgets,
    pairs: [4],
    chunk: 128,
  });
  process.stdout.write(dsaMassMarkdown(p, samples, `held-back text of ${text.description}; model ${out}`) + '\n');
}
