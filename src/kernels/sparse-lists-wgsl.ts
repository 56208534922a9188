// The key lists of a DSA layer's chunk, assembled on the GPU (the GPU twin of model/caches/dsa-layer.ts
// DsaLayer.select's rows): token p lists the sinks 0..S-1, then the indexer's picks among the middle keys
// S..p-W (selection rows of `picked`, indices relative to S), then its local window max(S, p-W+1)..p;
// min(p+1, k+S+W) keys in all, the count the gathered attention kernels assume; the rest of the row is -1.
// One thread per list entry. Plain bookkeeping, no paper to follow.

export const LISTS_THREADS = 64;

/** Keep in sync with the Params struct below. */
export function sparseListsParams(p: {
  tokens: number;
  start: number;
  sinks: number;
  local: number;
  /** Middle keys ranked (the cache's tokens - S - W, or 0), and the selection's row width. */
  middle: number;
  pickedWidth: number;
  listWidth: number;
  columns: number;
}): ArrayBuffer {
  return new Uint32Array([p.tokens, p.start, p.sinks, p.local, p.middle, p.pickedWidth, p.listWidth, p.columns]).buffer;
}

/** Dispatch (columns, rows) of 64-thread workgroups over tokens x listWidth entries. */
export function sparseListsWgsl(): string {
  return /* wgsl */ `
struct Params { tokens: u32, start: u32, sinks: u32, local: u32, middle: u32, picked_width: u32, width: u32, columns: u32 }
@group(0) @binding(0) var<storage, read> picked: array<i32>;
@group(0) @binding(1) var<storage, read_write> lists: array<i32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(${LISTS_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let x = (wg.x + wg.y * params.columns) * ${LISTS_THREADS}u + lid;
  if (x >= params.tokens * params.width) { return; }
  let t = x / params.width;
  let e = i32(x % params.width);
  let p = i32(params.start + t);
  let S = i32(params.sinks);
  let W = i32(params.local);
  let sinks = min(S, p + 1);
  // Middle keys token t sees: S..p-W, i.e. the first p-W-S+1 of the ranked ones (bottom-right causal).
  var picks = 0;
  if (params.middle > 0u) { picks = min(i32(params.picked_width), max(0, p - W - S + 1)); }
  let local0 = max(S, p - W + 1);
  let total = sinks + picks + max(0, p - local0 + 1);
  var key = -1;
  if (e < sinks) { key = e; }
  else if (e < sinks + picks) { key = picked[t * params.picked_width + u32(e - sinks)] + S; }
  else if (e < total) { key = local0 + e - sinks - picks; }
  lists[x] = key;
}
`;
}
