// RoPE (Su et al. 2021) of a layer's q and k and the move of its v, in one dispatch: token-major f32 rows
// [T, heads, D] from the projections into head-major rows [heads, T, D] in the storage dtype, q and k rotated
// (unless a positional method rotates them later), v only moved. Each tensor's token rows start `stride` words
// apart at word `offset`: three buffers of their own rows, or one stacked projection's rows [q | k | v] bound
// three times. One thread per (tensor, token, head, pair):
// the three tensors' ranges follow one another. It is ropeWgsl (rope-wgsl.ts) three times over; a decoded token
// made three dispatches of it per layer (~16 dispatches a token went to RoPE in the 1B model). CPU twin: three
// calls of CpuOps' rope (rope-cpu.ts).
import { ROPE_THREADS } from './rope-wgsl.js';

export const ROPE_QKV_THREADS = ROPE_THREADS;

export function ropeQkvParams(p: {
  tokens: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rotate: boolean;
  interleaved: boolean;
  /** Rows stacked as [q | k | v] in one buffer (the stacked projection), else each in its own. */
  stacked: boolean;
}): ArrayBuffer {
  const [q, kv] = [p.heads * p.headDim, p.kvHeads * p.headDim];
  const rows = p.stacked ? [q + 2 * kv, q + 2 * kv, q + 2 * kv, 0, q, q + kv] : [q, kv, kv, 0, 0, 0];
  const flags = [p.rotate ? 1 : 0, p.interleaved ? 1 : 0];
  return new Uint32Array([p.tokens, p.heads, p.kvHeads, p.headDim, ...flags, ...rows, 0, 0]).buffer;
}

/** Threads of one dispatch: every (token, head, pair) of q, k and v. */
export function ropeQkvThreads(tokens: number, heads: number, kvHeads: number, headDim: number): number {
  return (tokens * (heads + 2 * kvHeads) * headDim) / 2;
}

/** One tensor's share: `j` its thread index, `x`/`out` its bindings, `rows` its stride and offset fields. */
function part(x: string, out: string, heads: string, rows: string, rotate: string, outType: string): string {
  return `let h = (j / half) % ${heads};
    let t = j / (half * ${heads});
    let src = t * params.stride_${rows} + params.offset_${rows} + h * params.d;
    let dst = (h * params.t + t) * params.d;
    let x0 = ${x}[src + a];
    let x1 = ${x}[src + b];
    if (${rotate}) {
      let c = cs[t * half + i];
      let s = cs[(params.t + t) * half + i];
      ${out}[dst + a] = ${outType}(x0 * c - x1 * s);
      ${out}[dst + b] = ${outType}(x0 * s + x1 * c);
    } else {
      ${out}[dst + a] = ${outType}(x0);
      ${out}[dst + b] = ${outType}(x1);
    }`;
}

export function ropeQkvWgsl(outType: 'f32' | 'f16' = 'f32'): string {
  return /* wgsl */ `${outType === 'f16' ? 'enable f16;' : ''}
struct Params {
  t: u32, hq: u32, hkv: u32, d: u32, rotate: u32, interleaved: u32,
  stride_q: u32, stride_k: u32, stride_v: u32, offset_q: u32, offset_k: u32, offset_v: u32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<storage, read> xq: array<f32>;
@group(0) @binding(1) var<storage, read> xk: array<f32>;
@group(0) @binding(2) var<storage, read> xv: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<f32>;   // [T, D/2] cos then [T, D/2] sin
@group(0) @binding(4) var<storage, read_write> oq: array<${outType}>;
@group(0) @binding(5) var<storage, read_write> ok: array<${outType}>;
@group(0) @binding(6) var<storage, read_write> ov: array<${outType}>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(${ROPE_QKV_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = params.d / 2u;
  let idx = gid.x + gid.y * nwg.x * ${ROPE_QKV_THREADS}u;
  let nq = params.t * params.hq * half;
  let nk = params.t * params.hkv * half;
  if (idx >= nq + 2u * nk) { return; }
  let i = idx % half; // each tensor's range starts at a multiple of half: the pair index is the same in it
  var a = i;
  var b = i + half;
  if (params.interleaved != 0u) { a = 2u * i; b = a + 1u; }
  if (idx < nq) {
    let j = idx;
    ${part('xq', 'oq', 'params.hq', 'q', 'params.rotate != 0u', outType)}
  } else if (idx < nq + nk) {
    let j = idx - nq;
    ${part('xk', 'ok', 'params.hkv', 'k', 'params.rotate != 0u', outType)}
  } else {
    let j = idx - nq - nk;
    ${part('xv', 'ov', 'params.hkv', 'v', 'false', outType)}
  }
}`;
}
