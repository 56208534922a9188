// What a method whose cache is keys in rows needs to know (dense, flash, window, sinks, star, ring in one
// process): its cache layout, the mask of a prefill chunk over position-ordered keys, and when a single
// query sees every row it holds (then decoding reads the cache in place, in slot order: attention does
// not depend on the order of its keys).
import { ShapeError, SpecError } from '../../errors.js';
import type { MaskNode } from '../../spine/mask.js';
import {
  decodeParam,
  intParam,
  variantParam,
  vcheckParam,
  type DecodeKernel,
  type FlashVariant,
  type MethodSpec,
} from '../spec.js';
import type { FlashVCheck } from '../../kernels/flash-tc-wgsl.js';
import { maskForSpec } from '../sparse.js';
import { starParams } from '../star.js';
import { starMask } from '../star-mask.js';
import { RingLayout } from './ring-layout.js';

export const KV_METHODS = ['dense', 'flash', 'window', 'sinks', 'star', 'ring'] as const;

export interface KvMethod {
  spec: MethodSpec;
  /** Materialised scores (the quadratic baseline) or flash kernels. */
  kernel: 'dense' | 'flash';
  variant: FlashVariant;
  /** The split-KV decoding kernel of its decoding steps (decode=; star and ring take the default). */
  decode: DecodeKernel;
  /** Where the tensor-core flash kernel tests V for NaN (vcheck=; star and ring take the default). */
  vcheck: FlashVCheck;
  layout: RingLayout;
  /** The mask of a chunk of queries over position-ordered keys; undefined: causal. */
  mask(promptTokens: number | undefined): MaskNode | undefined;
  /** Whether one query at `start` sees every row the cache holds after it is appended. */
  seesAllRows(start: number, promptTokens: number | undefined): boolean;
}

/**
 * Window and sinks layers keep sinks + a ring of left + 1 rows: exactly what a decoding query sees (its
 * window and the sinks). When that is no smaller than the run, the cache is dense; a query then still sees
 * every row it holds, since then every position after the sinks lies within its window.
 */
export function kvMethod(spec: MethodSpec, maxTokens: number, ring = true): KvMethod {
  const dense = RingLayout.dense(maxTokens);
  const base = {
    spec,
    variant: variantParam(spec),
    decode: decodeParam(spec),
    vcheck: vcheckParam(spec),
    kernel: 'flash' as const,
    layout: dense,
  };
  switch (spec.name) {
    case 'dense':
      return { ...base, kernel: 'dense', mask: () => undefined, seesAllRows: () => true };
    case 'flash':
    case 'ring':
      return {
        ...base,
        variant: spec.name === 'ring' ? 'auto' : base.variant,
        mask: () => undefined,
        seesAllRows: () => true,
      };
    case 'window':
    case 'sinks': {
      const sinks = spec.name === 'sinks' ? intParam(spec, 'tokens') : 0;
      const left = intParam(spec, 'left');
      const narrower = sinks + left + 1 < maxTokens;
      const layout = ring && narrower ? new RingLayout(sinks, left + 1) : dense;
      const mask = maskForSpec(spec, true);
      // A dense cache kept on request (ring false) holds positions a narrow window no longer sees.
      return { ...base, layout, mask: () => mask, seesAllRows: () => ring || !narrower };
    }
    case 'star': {
      const p = starParams(spec);
      const masks = new Map<number, MaskNode>();
      const context = (prompt: number | undefined) => {
        if (prompt === undefined)
          throw new ShapeError('star: the first forward of a sequence (its prompt) is not known');
        if (p.query > prompt) throw new ShapeError(`star: query=${p.query} exceeds the prompt's ${prompt} tokens`);
        return prompt - p.query;
      };
      return {
        ...base,
        variant: 'auto',
        mask: (prompt) => {
          const c = context(prompt);
          let m = masks.get(c);
          if (!m) masks.set(c, (m = starMask(p, c, maxTokens)));
          return m;
        },
        // The query and every generated token (positions from the context on) see everything before them.
        seesAllRows: (start, prompt) => start >= context(prompt),
      };
    }
    default:
      throw new SpecError(`method '${spec.name}' keeps no plain KV cache (kv methods: ${KV_METHODS.join(', ')})`);
  }
}
