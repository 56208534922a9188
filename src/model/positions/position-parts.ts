// A positional method as a sum of ordinary RoPE attentions, for kernels that rotate once per token instead of
// once per (query, key) pair: each part rotates its queries to one position per query and reads keys rotated to
// one position per key, over the keys its mask keeps; the parts' key sets are disjoint and cover the causal
// past, so their attention states merge (the spine's merge) into the method's one softmax. Self-Extend is two
// parts (Jin et al. 2024, Algorithm 1: the neighbour attention and the grouped attention, merged by their masks):
//   neighbour  p - j < W:  query p,                             key j
//   grouped    p - j >= W: query floor(p/G) + W - floor(W/G),  key floor(j/G)
// so it keeps two rotations of every key (the exact and the grouped) beside the values: 1.5x a plain KV cache.
// Dual-chunk attention (An et al. 2024) is three parts over one rotation of the keys, j mod S (the cache costs
// what a plain one does), told apart by chunk index (spine/mask.ts, chunkBand):
//   intra        same chunk:     query p mod S
//   successive   previous chunk: query min(S + p mod S, S + L)
//   inter        older chunks:   query S + L
// Remap needs a per-query selection of far keys: it does not decompose here.
import { and, causal, chunkBand, slidingWindow, type MaskNode } from '../../spine/mask.js';
import type { PositionMethod } from './position-method.js';

export interface PositionPart {
  name: string;
  /** Which key rotation of `keyPositions` this part reads. */
  keys: number;
  /** The position RoPE rotates the query at absolute position p to. */
  queryPosition(p: number): number;
  /** The keys it attends, over absolute positions (bottom-right aligned causal calls: query p, key j). */
  mask: MaskNode;
}

export interface PositionParts {
  /** Each cached rotation of the keys: the position key j is rotated to. */
  keyPositions: ((j: number) => number)[];
  parts: PositionPart[];
}

/**
 * The parts of `m` over `visible` (the attention method's own mask: a window or sinks; undefined is causal);
 * undefined when the method does not decompose (remap). `maxTokens` bounds the far side.
 */
export function positionParts(
  m: PositionMethod,
  maxTokens: number,
  visible: MaskNode | undefined,
): PositionParts | undefined {
  const within = (part: MaskNode) => (visible ? and(visible, part) : part);
  switch (m.kind) {
    case 'none':
      return {
        keyPositions: [(j) => j],
        parts: [{ name: 'plain', keys: 0, queryPosition: (p) => p, mask: within(slidingWindow(maxTokens, 0)) }],
      };
    case 'self-extend': {
      const { window: W, group: G } = m;
      const shift = W - Math.floor(W / G);
      return {
        keyPositions: [(j) => j, (j) => Math.floor(j / G)],
        parts: [
          { name: 'neighbour', keys: 0, queryPosition: (p) => p, mask: within(slidingWindow(W - 1, 0)) },
          // Keys j <= p - W: a window reaching back to the start and ending W before the query.
          {
            name: 'grouped',
            keys: 1,
            queryPosition: (p) => Math.floor(p / G) + shift,
            mask: within(slidingWindow(maxTokens, -W)),
          },
        ],
      };
    }
    case 'chunked': {
      const { chunk: S, local: L } = m;
      return {
        keyPositions: [(j) => j % S],
        parts: [
          { name: 'intra', keys: 0, queryPosition: (p) => p % S, mask: within(and(causal(), chunkBand(S, 0, 0))) },
          {
            name: 'successive',
            keys: 0,
            queryPosition: (p) => Math.min(S + (p % S), S + L),
            mask: within(chunkBand(S, 1, 1)),
          },
          { name: 'inter', keys: 0, queryPosition: () => S + L, mask: within(chunkBand(S, 2, 2 ** 31 - 1)) },
        ],
      };
    }
    case 'remap':
      return undefined;
  }
}

/** RoPE's table for rotating tokens to `positions` (kernels/rope-wgsl.ts, head-major input): [cos | sin] x T x D/2, f32,
 * angles in float64, each scaled by the scaling's attention factor (so a score carries its square). */
export function positionTable(
  positions: ArrayLike<number>,
  invFreq: Float64Array,
  attentionFactor: number,
): Float32Array<ArrayBuffer> {
  const half = invFreq.length;
  const T = positions.length;
  const table = new Float32Array(2 * T * half);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const angle = positions[t] * invFreq[i];
      table[t * half + i] = Math.cos(angle) * attentionFactor;
      table[(T + t) * half + i] = Math.sin(angle) * attentionFactor;
    }
  return table;
}
