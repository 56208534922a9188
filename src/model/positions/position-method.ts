// Training-free position handling: which positions RoPE rotates a query and a key by, so that a model trained
// at context c never sees a relative distance of c or more, however long the text. Each method is a position
// assignment (query p, key j <= p) -> (query position, key position); attention depends only on their difference.
// - Self-Extend (Jin et al. 2024, "LLM Maybe LongLM"): neighbours (p - j < W) at their own positions; beyond the
//   window both are grouped, query floor(p/G) + W - floor(W/G), key floor(j/G), so distances stay continuous at W.
// - Chunked / dual-chunk attention (An et al. 2024, "Training-Free Long-Context Scaling", ChunkLlama): keys at
//   j mod S; queries at p mod S for keys of their own chunk (intra), min(S + p mod S, S + L) for the previous
//   chunk (successive: exact distances for the first L queries of a chunk), S + L for older chunks (inter).
// - Remapped selection (ReAttention, Liu et al. 2024; InfLLM, Xiao et al. 2024): keys in the local window W keep
//   exact distances; of the far keys, the top K by position-agnostic score q.k are attended, in their original
//   order, at distances W .. W + K - 1 just beyond the window; the rest are not attended.
import { SpecError } from '../../errors.js';

export type PositionMethod =
  | { kind: 'none' }
  | { kind: 'self-extend'; window: number; group: number }
  | { kind: 'chunked'; chunk: number; local: number }
  | { kind: 'remap'; window: number; topk: number };

export const POSITIONS_USAGE = `--positions none | self-extend:window=W,group=G | chunked:chunk=S,local=L | remap:window=W,topk=K
    training-free position handling beside flash, dense, window or sinks (remap: flash or dense), on the CPU and
    WebGPU: Self-Extend, dual-chunk, remapped top-k; beside dsa (CPU), the DSA indexer picks remap's far keys`;

const KEYS: Record<PositionMethod['kind'], readonly string[]> = {
  none: [],
  'self-extend': ['window', 'group'],
  chunked: ['chunk', 'local'],
  remap: ['window', 'topk'],
};

export function parsePositionSpec(text: string): PositionMethod {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const kind = (colon < 0 ? trimmed : trimmed.slice(0, colon)) as PositionMethod['kind'];
  if (!Object.hasOwn(KEYS, kind))
    throw new SpecError(`unknown positional method '${kind}'; known: ${Object.keys(KEYS).join(', ')}`);
  const params = new Map<string, number>();
  for (const part of colon < 0 || trimmed.slice(colon + 1) === '' ? [] : trimmed.slice(colon + 1).split(',')) {
    const [key, raw] = part.split('=').map((s) => s.trim());
    if (!KEYS[kind].includes(key))
      throw new SpecError(`positional method '${kind}' has no key '${key}'; keys: ${KEYS[kind].join(', ') || 'none'}`);
    const n = Number(raw);
    if (raw === undefined || raw === '' || !Number.isInteger(n) || n < 1)
      throw new SpecError(`--positions ${kind}: ${key} must be a positive integer, got '${raw}'`);
    if (params.has(key)) throw new SpecError(`--positions ${kind}: ${key} given twice`);
    params.set(key, n);
  }
  const need = (key: string) => {
    const n = params.get(key);
    if (n === undefined) throw new SpecError(`--positions ${kind} needs ${key}=N`);
    return n;
  };
  switch (kind) {
    case 'none':
      return { kind };
    case 'self-extend':
      return { kind, window: need('window'), group: need('group') };
    case 'chunked':
      return { kind, chunk: need('chunk'), local: need('local') };
    case 'remap':
      return { kind, window: need('window'), topk: need('topk') };
  }
}

export function formatPositionSpec(m: PositionMethod): string {
  switch (m.kind) {
    case 'none':
      return 'none';
    case 'self-extend':
      return `self-extend:window=${m.window},group=${m.group}`;
    case 'chunked':
      return `chunked:chunk=${m.chunk},local=${m.local}`;
    case 'remap':
      return `remap:window=${m.window},topk=${m.topk}`;
  }
}

/** The relative distances a method can produce must stay below the trained context; a SpecError says why not. */
export function checkPositionMethod(m: PositionMethod, trainedContext: number): void {
  const fail = (why: string) => {
    throw new SpecError(`--positions ${formatPositionSpec(m)}: ${why} (the model was trained at ${trainedContext})`);
  };
  if (m.kind === 'self-extend' && m.window >= trainedContext) fail('window must be below the trained context');
  if (m.kind === 'chunked' && m.chunk + m.local >= trainedContext)
    fail('chunk + local must be below the trained context');
  if (m.kind === 'remap' && m.window + m.topk > trainedContext)
    fail('window + topk must not exceed the trained context');
}

/**
 * The longest sequence a method serves with every relative distance inside the trained context: the number
 * the context check compares a prompt against (Infinity: any length; plain RoPE: the trained context).
 */
export function positionReach(m: PositionMethod, trainedContext: number): number {
  switch (m.kind) {
    case 'none':
      return trainedContext;
    case 'self-extend':
      // Largest grouped distance at length N: floor((N-1)/G) + W - floor(W/G) <= c - 1.
      return m.window >= trainedContext
        ? trainedContext
        : (trainedContext - m.window + Math.floor(m.window / m.group)) * m.group;
    case 'chunked':
      return m.chunk + m.local < trainedContext ? Infinity : trainedContext;
    case 'remap':
      return m.window + m.topk <= trainedContext ? Infinity : trainedContext;
  }
}

/**
 * The relative distance (query position - key position) at which query p sees key j <= p; for remap, `rank`
 * is the key's place among the m far keys selected for this query (0 = oldest), -1 when not selected
 * (the result is then NaN: not attended). The CPU path and the tests use this one definition.
 */
export function relativePosition(m: PositionMethod, p: number, j: number, rank = -1, selected = 0): number {
  switch (m.kind) {
    case 'none':
      return p - j;
    case 'self-extend':
      if (p - j < m.window) return p - j;
      return Math.floor(p / m.group) + m.window - Math.floor(m.window / m.group) - Math.floor(j / m.group);
    case 'chunked': {
      const [cp, cj, i, jj] = [Math.floor(p / m.chunk), Math.floor(j / m.chunk), p % m.chunk, j % m.chunk];
      if (cp === cj) return i - jj;
      if (cp === cj + 1) return Math.min(m.chunk + i, m.chunk + m.local) - jj;
      return m.chunk + m.local - jj;
    }
    case 'remap':
      if (p - j < m.window) return p - j;
      return rank < 0 ? NaN : m.window + (selected - 1 - rank);
  }
}

/**
 * For the context check (src/model/load/can-serve.ts, issue 13 item 4): what serves `positions` tokens through
 * this method, or undefined when it cannot (then the check looks at RoPE scaling and windows).
 */
export function positionsServe(
  m: PositionMethod | undefined,
  trainedContext: number,
  positions: number,
): string | undefined {
  if (!m || m.kind === 'none') return undefined;
  const reach = positionReach(m, trainedContext);
  if (positions > reach) return undefined;
  return `positional method ${formatPositionSpec(m)} (${Number.isFinite(reach) ? `to ${reach} positions` : 'any length'})`;
}

/** A Self-Extend setting that serves `positions` tokens (window a quarter of the trained context), for messages. */
export function suggestPositions(trainedContext: number, positions: number): string {
  const window = Math.max(1, Math.floor(trainedContext / 4));
  let group = 2;
  while (positionReach({ kind: 'self-extend', window, group }, trainedContext) < positions) group *= 2;
  return `--positions self-extend:window=${window},group=${group}`;
}

/** A remapped top-k setting that serves any length (window and top-k a quarter of the trained context each:
 * passkey-2k's best on the H200 at 64K-128K, docs/EVAL.md), for messages. */
export function suggestRemap(trainedContext: number): string {
  const quarter = Math.max(1, Math.floor(trainedContext / 4));
  return `--positions remap:window=${quarter},topk=${quarter}`;
}
