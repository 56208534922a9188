// AdamW (Loshchilov & Hutter 2019: Adam with decoupled weight decay) over one flat float64 parameter vector,
// with the learning-rate schedule of DeepSeek-V3.2's indexer warm-up: linear warm-up, then cosine decay to
// a tenth of the peak; and global-norm gradient clipping before the step.

export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the gradient to this global L2 norm (0 = no clipping). */
  clip: number;
}

export interface AdamWState {
  m: Float64Array;
  v: Float64Array;
}

export function adamWState(size: number): AdamWState {
  return { m: new Float64Array(size), v: new Float64Array(size) };
}

/** Learning rate of step (0-based) of `steps`: linear warm-up over `warmup` steps, then cosine to lr / 10. */
export function scheduledLr(lr: number, step: number, steps: number, warmup: number): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const progress = steps > warmup ? (step - warmup) / (steps - warmup) : 1;
  return lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** Scales grad to at most `clip` L2 norm; returns the norm before clipping. */
export function clipGradient(grad: Float64Array, clip: number): number {
  let sq = 0;
  for (let i = 0; i < grad.length; i++) sq += grad[i] * grad[i];
  const norm = Math.sqrt(sq);
  if (clip > 0 && norm > clip) for (let i = 0; i < grad.length; i++) grad[i] *= clip / norm;
  return norm;
}

/** One AdamW step at learning rate lr (t = 1-based step count for bias correction); decay only where decays[i]. */
export function adamWStep(
  params: Float64Array,
  grad: Float64Array,
  state: AdamWState,
  s: AdamWSettings,
  lr: number,
  t: number,
  decayUntil: number,
): void {
  const c1 = 1 - s.beta1 ** t;
  const c2 = 1 - s.beta2 ** t;
  for (let i = 0; i < params.length; i++) {
    const g = grad[i];
    state.m[i] = s.beta1 * state.m[i] + (1 - s.beta1) * g;
    state.v[i] = s.beta2 * state.v[i] + (1 - s.beta2) * g * g;
    if (i < decayUntil) params[i] -= lr * s.weightDecay * params[i];
    params[i] -= (lr * (state.m[i] / c1)) / (Math.sqrt(state.v[i] / c2) + s.eps);
  }
}
