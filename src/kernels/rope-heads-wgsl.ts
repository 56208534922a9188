// RoPE (Su et al. 2021) of head-major rows at positions the host chose: x [heads, T, D] (the layer chunk's
// unrotated q or k, in storage dtype) -> out[(h * stride + offset + t) * D + d], straight into a KV cache or a
// query scratch. The table holds cos and sin per (token, pair) for whatever positions a positional method
// assigns (Self-Extend's grouped positions, model/positions/position-parts.ts), in float64 on the host then
// f32. rotate = 0 only moves rows (V). Same rotation as kernels/rope-wgsl.ts, whose input is token-major;
// CPU twin: the per-pair rotation of model/positions/positioned-attention-cpu.ts (checked through the layer).

export const ROPE_HEADS_THREADS = 64;

export function ropeHeadsParams(p: {
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

export function ropeHeadsWgsl(dtype: 'f32' | 'f16'): string {
  return /* wgsl */ `${dtype === 'f16' ? 'enable f16;' : ''}
struct Params { t: u32, heads: u32, d: u32, stride: u32, offset: u32, rotate: u32, interleaved: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;   // [T, D/2] cos then [T, D/2] sin
@group(0) @binding(2) var<storage, read_write> out: array<${dtype}>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${ROPE_HEADS_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = params.d / 2u;
  let idx = gid.x + gid.y * nwg.x * ${ROPE_HEADS_THREADS}u;
  if (idx >= params.t * params.heads * half) { return; }
  let i = idx % half;
  let t = (idx / half) % params.t;
  let h = idx / (half * params.t);
  var a = i;
  var b = i + half;
  if (params.interleaved != 0u) { a = 2u * i; b = a + 1u; }
  let src = (h * params.t + t) * params.d;
  let dst = (h * params.stride + params.offset + t) * params.d;
  let x0 = f32(x[src + a]);
  let x1 = f32(x[src + b]);
  if (params.rotate == 0u) {
    out[dst + a] = x[src + a];
    out[dst + b] = x[src + b];
    return;
  }
  let c = cs[t * half + i];
  let s = cs[(params.t + t) * half + i];
  out[dst + a] = ${dtype}(x0 * c - x1 * s);
  out[dst + b] = ${dtype}(x0 * s + x1 * c);
}`;
}
