// Star Attention (Acharya et al. 2024, NVIDIA, arXiv:2411.17116): blockwise-local attention with an anchor.
// Phase 1 (context): blocks of b tokens spread over hosts; block 0 is causal in itself, every other block
// attends causally to [anchor; block], the anchor being the first a tokens at their original positions.
// Phase 2 (query): every host returns (O, LSE) of the query tokens over its own KV; the query host (the
// last) adds the query tokens' own causal state and merges. Here as a plan over flash + block masks.
import { ShapeError, SpecError, UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import { flashAttention } from './flash.js';
import { and, causal, documents, or, sinkTokens } from '../spine/mask.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { concatTokens, placeState, rowsAt, sliceTokens, splitEvenly, type TokenRange } from './shards.js';
import { intParam, MAX_HOSTS, parseMethodSpec, type MethodSpec } from './spec.js';
import { emptyState, mergeAll, type AttentionState } from '../spine/state.js';

export interface StarParams {
  /** Context block size b. */
  block: number;
  /** Anchor size a (the first a tokens), at most b; default b. */
  anchor: number;
  /** The last `query` positions are the query: they see every key before them. */
  query: number;
  /** Context hosts; the last one is also the query host. */
  hosts: number;
}

export function starParams(method: MethodSpec | string): StarParams {
  const spec = typeof method === 'string' ? parseMethodSpec(method) : method;
  const block = intParam(spec, 'block');
  const anchor = intParam(spec, 'anchor', block);
  const query = intParam(spec, 'query', 0);
  const hosts = intParam(spec, 'hosts', 1, MAX_HOSTS);
  if (block < 1) throw new SpecError('star: block must be at least 1');
  if (anchor > block)
    throw new SpecError(`star: anchor (${anchor}) must not exceed block (${block}): the anchor is a prefix of block 0`);
  if (hosts < 1) throw new SpecError('star: hosts must be at least 1');
  return { block, anchor, query, hosts };
}

/** Where every token lives: context ranges per host (whole blocks), then the query tokens. */
export interface StarLayout {
  keys: number;
  /** Context length: keys - query. */
  context: number;
  /** Context positions [start, end) of each host, block-aligned; a host may own none. */
  hosts: TokenRange[];
  /** Positions of the query tokens, held by the last host. */
  query: TokenRange;
}

export function starLayout(p: StarParams, keys: number): StarLayout {
  if (p.query > keys) throw new ShapeError(`star: query (${p.query}) exceeds the ${keys} keys`);
  const context = keys - p.query;
  const blocks = Math.ceil(context / p.block);
  const hosts = splitEvenly(blocks, p.hosts).map(
    ([b0, b1]) => [Math.min(context, b0 * p.block), Math.min(context, b1 * p.block)] as const,
  );
  return { keys, context, hosts, query: [context, keys] };
}

/** What one context host receives for phase 1: its tokens' K/V, its query rows, and the anchor's K/V. */
export interface StarHostInputs {
  /** First context position of this host. */
  start: number;
  /** Query rows of this host's positions ([heads, rows, dim]; rows may be fewer than tokens when Nq < Nk). */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** The first `anchor` tokens' K/V, for hosts that do not start at position 0. */
  anchorK?: Tensor;
  anchorV?: Tensor;
}

export function starHostInputs(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  p: StarParams,
  layout: StarLayout,
  host: number,
): StarHostInputs {
  const [start, end] = layout.hosts[host];
  const [r0, r1] = rowsAt(q.shape[1], k.shape[1], [start, end]);
  const withAnchor = start > 0 && p.anchor > 0;
  return {
    start,
    q: sliceTokens(q, r0, r1),
    k: sliceTokens(k, start, end),
    v: sliceTokens(v, start, end),
    anchorK: withAnchor ? sliceTokens(k, 0, p.anchor) : undefined,
    anchorV: withAnchor ? sliceTokens(v, 0, p.anchor) : undefined,
  };
}

/**
 * Phase 1 on one host: its query rows attend causally to [anchor; own block] (block 0: to itself).
 * One flash call with a block mask over the host's local keys [anchor; own tokens]: causal, and either
 * an anchor key or a key of the query's own block (documents = block ids). The anchor's KV is not kept.
 */
export async function starPhase1(
  device: Device,
  x: StarHostInputs,
  p: Pick<StarParams, 'block' | 'anchor'>,
  opts: AttentionOptions = {},
): Promise<AttentionState> {
  const [heads, rows, dim] = x.q.shape;
  const tokens = x.k.shape[1];
  if (rows === 0 || tokens === 0) return emptyState(heads, rows, dim);
  const anchor = x.anchorK ? x.anchorK.shape[1] : 0;
  const k = x.anchorK ? concatTokens([x.anchorK, x.k]) : x.k;
  const v = x.anchorV ? concatTokens([x.anchorV, x.v]) : x.v;
  const ids = new Int32Array(anchor + tokens);
  for (let t = 0; t < tokens; t++) ids[anchor + t] = Math.floor((x.start + t) / p.block);
  // Without a separate anchor (host 0), the first `anchor` positions are the anchor itself.
  const mask = and(causal(), or(sinkTokens(x.anchorK ? anchor : p.anchor), documents(ids)));
  return flashAttention(device, x.q, k, v, { ...opts, causal: true, mask });
}

/** Phase 2 on one host: the query tokens over this host's KV (all before them), or, on the query host,
 * over the query tokens' own KV (causal). */
export async function starPhase2(
  device: Device,
  qQuery: Tensor,
  k: Tensor,
  v: Tensor,
  ownQueryKv: boolean,
  opts: AttentionOptions = {},
): Promise<AttentionState> {
  const [heads, rows, dim] = qQuery.shape;
  if (rows === 0 || k.shape[1] === 0) return emptyState(heads, rows, dim);
  return flashAttention(device, qQuery, k, v, { scale: opts.scale, causal: ownQueryKv });
}

/** The query host's merge, in a fixed order (hosts 0..H-1, then its own query KV) so that every
 * placement of hosts gives the same bits. */
export function mergeStarQuery(hostStates: AttentionState[], own: AttentionState): AttentionState {
  return mergeAll([...hostStates, own]);
}

/** `star:block=B,anchor=A,query=Q[,hosts=H]` in one process: the hosts' work, one after another. */
export async function starAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  method: MethodSpec | string,
  opts: AttentionOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  if (!s.causal)
    throw new UnsupportedError("star attention is causal (a decoder's context encoding); drop --no-causal");
  const p = starParams(method);
  const layout = starLayout(p, s.keys);
  const out = emptyState(s.heads, s.queries, s.headDim);
  const qRows = rowsAt(s.queries, s.keys, layout.query);
  const qQuery = sliceTokens(q, qRows[0], qRows[1]);
  const partials: AttentionState[] = [];
  for (let h = 0; h < p.hosts; h++) {
    const x = starHostInputs(q, k, v, p, layout, h);
    placeState(out, await starPhase1(device, x, p, opts), rowsAt(s.queries, s.keys, layout.hosts[h])[0]);
    partials.push(await starPhase2(device, qQuery, x.k, x.v, false, opts));
  }
  const [c0, c1] = layout.query;
  const own = await starPhase2(device, qQuery, sliceTokens(k, c0, c1), sliceTokens(v, c0, c1), true, opts);
  placeState(out, mergeStarQuery(partials, own), qRows[0]);
  return out;
}
