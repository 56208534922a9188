// RoPE (Su et al. 2021) fused with the move from token-major [T, heads, D] to head-major rows
// out[(h * stride + offset + t) * D + d], so K and V land straight in the KV cache at their positions.
// cos and sin come per (token, pair) from the host, computed in float64, so long positions keep their
// precision. rotate = 0 only moves (for V). CPU twin: rope-cpu.ts.
// The same kernel rotates head-major rows [heads, T, D] in the storage dtype (`input`): a positional method's
// unrotated q or k at the positions it assigns (model/caches/positioned-layer-gpu.ts, position-parts.ts).

export const ROPE_THREADS = 64;

export function ropeParams(p: {
  tokens: number;
  heads: number;
  headDim: number;
  stride: number;
  offset: number;
  rotate: boolean;
  interleaved: boolean;
}): ArrayBuffer {
  return new Uint32Array([p.tokens, p.heads, p.headDim, p.stride, p.offset, p.rotate ? 1 : 0, p.interleaved ? 1 : 0, 0])
    .buffer;
}

/** Where the rows come from: token-major f32 (the model's projections, the default) or head-major rows. */
export interface RopeInput {
  dtype: 'f32' | 'f16';
  headMajor: boolean;
}

/** out f16 stores K, V and Q in half precision (the KV cache and the flash kernels' f16 inputs). */
export function ropeWgsl(
  outType: 'f32' | 'f16' = 'f32',
  input: RopeInput = { dtype: 'f32', headMajor: false },
): string {
  const f16 = outType === 'f16' || input.dtype === 'f16';
  const order = input.headMajor
    ? `let t = (idx / half) % params.t;
  let h = idx / (half * params.t);
  let src = (h * params.t + t) * params.d;`
    : `let h = (idx / half) % params.heads;
  let t = idx / (half * params.heads);
  let src = (t * params.heads + h) * params.d;`;
  return /* wgsl */ `${f16 ? 'enable f16;' : ''}
struct Params { t: u32, heads: u32, d: u32, stride: u32, offset: u32, rotate: u32, interleaved: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<${input.dtype}>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;   // [T, D/2] cos then [T, D/2] sin
@group(0) @binding(2) var<storage, read_write> out: array<${outType}>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${ROPE_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = params.d / 2u;
  let idx = gid.x + gid.y * nwg.x * ${ROPE_THREADS}u;
  if (idx >= params.t * params.heads * half) { return; }
  let i = idx % half;
  ${order}
  var a = i;
  var b = i + half;
  if (params.interleaved != 0u) { a = 2u * i; b = a + 1u; }
  let dst = (h * params.stride + params.offset + t) * params.d;
  let x0 = f32(x[src + a]);
  let x1 = f32(x[src + b]);
  if (params.rotate == 0u) {
    out[dst + a] = ${outType}(x[src + a]);
    out[dst + b] = ${outType}(x[src + b]);
    return;
  }
  let c = cs[t * half + i];
  let s = cs[(params.t + t) * half + i];
  out[dst + a] = ${outType}(x0 * c - x1 * s);
  out[dst + b] = ${outType}(x0 * s + x1 * c);
}`;
}
