// Where each host's tokens lie in a model run spread over hosts (star-model.ts): the coordinator and every
// host compute the same parts from the same plan, so only the plan and the prompt's ids travel.
// Star: the context in blocks of B, whole blocks per host in order (attention/star.ts, starLayout); a host
// that does not start at 0 encodes the anchor's copy first; the last host also encodes the query tokens
// (phase 2) and every generated token. Ring: even shards of the prompt, the last host decodes.
import { InputError } from '../errors.js';
import { starLayout } from '../attention/star.js';
import { ringShards } from '../attention/ring.js';
import type { TokenRange } from '../attention/shards.js';

export interface ModelRunPlan {
  method: 'star' | 'ring';
  /** Star: block size, anchor (default the block) and query tokens (the last Q of the prompt). */
  block: number;
  anchor: number;
  query: number;
  hosts: number;
  promptTokens: number;
  /** Generated tokens at most (the query host's cache is sized for them). */
  newTokens: number;
  /** Tokens per forward chunk on a Star host (a Ring host encodes its shard in one chunk). */
  chunk: number;
}

export interface HostPart {
  /** Positions this host encodes, run after run (each run contiguous; the anchor's copy first). */
  runs: TokenRange[];
  /** Positions from here on are phase 2 (the query, then generated tokens). */
  context: number;
  anchorCopy: number;
  /** Rows each layer of this host holds at most. */
  capacity: number;
  /** Tokens per forward chunk. */
  chunk: number;
  /** The last host: it encodes the query, decodes and merges the others' states. */
  queryHost: boolean;
}

export function checkModelRunPlan(p: ModelRunPlan): void {
  if (!Number.isInteger(p.hosts) || p.hosts < 1)
    throw new InputError(`--hosts must be a positive integer, got ${p.hosts}`);
  if (p.promptTokens < 1) throw new InputError('a run across hosts needs a prompt of at least one token');
  if (p.method === 'star' && p.query > p.promptTokens)
    throw new InputError(`star: query=${p.query} exceeds the prompt's ${p.promptTokens} tokens`);
}

export function hostParts(p: ModelRunPlan): HostPart[] {
  checkModelRunPlan(p);
  const N = p.promptTokens;
  const last = p.hosts - 1;
  if (p.method === 'ring') {
    const shards = ringShards(N, p.hosts);
    const chunk = Math.max(1, ...shards.map(([s, e]) => e - s));
    return shards.map(([s, e], i) => ({
      runs: e > s ? [[s, e] as const] : [],
      context: N,
      anchorCopy: 0,
      capacity: e - s + (i === last ? p.newTokens : 0),
      chunk,
      queryHost: i === last,
    }));
  }
  const layout = starLayout({ block: p.block, anchor: p.anchor, query: p.query, hosts: p.hosts }, N);
  return layout.hosts.map(([s, e], i) => {
    const anchorCopy = s > 0 && e > s ? p.anchor : 0;
    const runs: TokenRange[] = [];
    if (anchorCopy > 0) runs.push([0, anchorCopy]);
    if (e > s) runs.push([s, e]);
    const queryHost = i === last;
    if (queryHost && layout.query[1] > layout.query[0]) runs.push(layout.query);
    const phase2 = queryHost ? N - layout.context + p.newTokens : 0;
    return {
      runs,
      context: layout.context,
      anchorCopy,
      capacity: anchorCopy + e - s + phase2,
      chunk: p.chunk,
      queryHost,
    };
  });
}
