// Ring Attention (Liu, Zaharia, Abbeel 2023, arXiv:2310.01889): exact attention over a sequence split
// across H hosts. Each host keeps the queries of its contiguous shard; the KV shards travel around the
// ring (host h sees shards h, h-1, ..., h+1 in turn) and each step's state merges into the host's own.
// Causal: shards after a host's own are invisible and skipped (the imbalance striped attention fixes).
import { ShapeError, SpecError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import { flashAttention } from './flash.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { placeState, rowsAt, sliceTokens, splitEvenly, type TokenRange } from './shards.js';
import { intParam, MAX_HOSTS, parseMethodSpec, type MethodSpec } from './spec.js';
import { emptyState, mergeStates, type AttentionState } from '../spine/state.js';

export function ringHosts(method: MethodSpec | string): number {
  const spec = typeof method === 'string' ? parseMethodSpec(method) : method;
  const hosts = intParam(spec, 'hosts', 1, MAX_HOSTS);
  if (hosts < 1) throw new SpecError('ring: hosts must be at least 1');
  return hosts;
}

/** Key positions of each host's shard. */
export function ringShards(keys: number, hosts: number): TokenRange[] {
  return splitEvenly(keys, hosts);
}

/** Query rows a host keeps: those at its shard's positions (causal), or an even split (not causal). */
export function ringQueryRows(
  queries: number,
  keys: number,
  hosts: number,
  host: number,
  isCausal: boolean,
): TokenRange {
  return isCausal ? rowsAt(queries, keys, ringShards(keys, hosts)[host]) : splitEvenly(queries, hosts)[host];
}

/** The shard host `host` holds at ring step `step`. */
export function ringShardAt(host: number, step: number, hosts: number): number {
  return (((host - step) % hosts) + hosts) % hosts;
}

/**
 * One ring step on one host: its queries (positions ending at `queryEnd`, the end of its own shard)
 * over one KV shard at positions [shard[0], shard[1]). Returns undefined when causality hides the shard.
 */
export async function ringStep(
  device: Device,
  q: Tensor,
  queryEnd: number,
  k: Tensor,
  v: Tensor,
  shard: TokenRange,
  opts: AttentionOptions = {},
): Promise<AttentionState | undefined> {
  const rows = q.shape[1];
  if (rows === 0 || shard[1] === shard[0]) return undefined;
  const isCausal = opts.causal ?? true;
  const queryStart = queryEnd - rows;
  if (isCausal && shard[0] >= queryEnd) return undefined;
  if (!isCausal || shard[1] <= queryStart) return flashAttention(device, q, k, v, { scale: opts.scale, causal: false });
  if (shard[1] !== queryEnd)
    throw new ShapeError(`ring: a partly visible shard [${shard}] must be the host's own (ending at ${queryEnd})`);
  return flashAttention(device, q, k, v, { scale: opts.scale, causal: true });
}

/** Folds one step's state into a host's running state (steps in ring order). */
export function ringAccumulate(
  acc: AttentionState | undefined,
  step: AttentionState | undefined,
): AttentionState | undefined {
  if (!step) return acc;
  return acc ? mergeStates(acc, step) : step;
}

/** `ring:hosts=H` in one process: every host's steps in ring order, exactly as the hosts run them. */
export async function ringAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  method: MethodSpec | string,
  opts: AttentionOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  const hosts = ringHosts(method);
  const shards = ringShards(s.keys, hosts);
  const out = emptyState(s.heads, s.queries, s.headDim);
  const kv = shards.map(([a, b]) => [sliceTokens(k, a, b), sliceTokens(v, a, b)] as const);
  for (let h = 0; h < hosts; h++) {
    const [r0, r1] = ringQueryRows(s.queries, s.keys, hosts, h, s.causal);
    if (r1 === r0) continue;
    const qh = sliceTokens(q, r0, r1);
    let acc: AttentionState | undefined;
    for (let step = 0; step < hosts; step++) {
      const j = ringShardAt(h, step, hosts);
      acc = ringAccumulate(acc, await ringStep(device, qh, shards[h][1], kv[j][0], kv[j][1], shards[j], opts));
    }
    if (acc) placeState(out, acc, r0);
  }
  return out;
}
