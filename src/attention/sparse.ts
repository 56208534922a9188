// Sparse attention methods on the block mask: a sliding window (FlashAttention's window semantics),
// sink / global tokens plus a window (StreamingLLM, Xiao et al. 2023), and layer schedules that mix
// global and local layers (ModernBERT, Warner et al. 2024: global every third layer, a 128-token window
// elsewhere).
import { SpecError } from '../errors.js';
import { and, causal, or, sinkTokens, slidingWindow, type MaskNode } from '../spine/mask.js';
import { intParam, parseMethodSpec, type MethodSpec } from './spec.js';

/** `window:left=L[,right=R]`: query at position p sees keys [p - L, p + R]; causal forces R = 0. */
export function windowMask(spec: MethodSpec, isCausal: boolean): MaskNode {
  const left = intParam(spec, 'left');
  const right = isCausal ? 0 : intParam(spec, 'right', 0);
  return isCausal ? and(causal(), slidingWindow(left, 0)) : slidingWindow(left, right);
}

/** `sinks:tokens=S,left=L[,right=R]`: the first S tokens always, plus a window (causal: [p - L, p]). */
export function sinksMask(spec: MethodSpec, isCausal: boolean): MaskNode {
  const tokens = intParam(spec, 'tokens');
  const left = intParam(spec, 'left');
  const right = isCausal ? 0 : intParam(spec, 'right', 0);
  const visible = or(sinkTokens(tokens), slidingWindow(left, right));
  return isCausal ? and(causal(), visible) : visible;
}

export function maskForSpec(spec: MethodSpec, isCausal: boolean): MaskNode | undefined {
  if (spec.name === 'window') return windowMask(spec, isCausal);
  if (spec.name === 'sinks') return sinksMask(spec, isCausal);
  return undefined;
}

/** Which attention method each layer of a model uses. */
export interface LayerSchedule {
  readonly description: string;
  methodFor(layer: number): MethodSpec;
}

/** Every layer the same method. */
export function uniformSchedule(method: MethodSpec | string): LayerSchedule {
  const spec = typeof method === 'string' ? parseMethodSpec(method) : method;
  return { description: `${spec.name} on every layer`, methodFor: () => spec };
}

/**
 * `hybrid:every=E,window=W`: global (flash) attention on layers 0, E, 2E, ... and a W-key local window
 * on the others. ModernBERT's encoder window is W wide around the query; for a decoder it is causal,
 * the W keys before the query.
 */
export function hybridSchedule(
  every: number,
  window: number,
  global: MethodSpec = { name: 'flash', params: {} },
): LayerSchedule {
  if (every < 1) throw new SpecError(`hybrid: every must be at least 1, got ${every}`);
  const local: MethodSpec = { name: 'window', params: { left: String(window) } };
  return {
    description: `global attention every ${every} layers, a ${window}-key window elsewhere`,
    methodFor: (layer) => (layer % every === 0 ? global : local),
  };
}

export function scheduleFromSpec(spec: MethodSpec): LayerSchedule {
  if (spec.name === 'hybrid') return hybridSchedule(intParam(spec, 'every', 3), intParam(spec, 'window', 128));
  return uniformSchedule(spec);
}
