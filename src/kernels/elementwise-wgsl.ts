// The decoder's elementwise steps, one thread per value: embedding rows gathered by token id, residual
// add, SwiGLU (Shazeer 2020: silu(gate) * up) and head-major [heads, T, D] back to token-major [T, heads * D].
// CPU twins: elementwise-cpu.ts and the loops of model/forward/decoder-cpu.ts.

export const ELEMENTWISE_THREADS = 256;

export function elementwiseParams(n: number, a = 0, b = 0, c = 0): ArrayBuffer {
  return new Uint32Array([n, a, b, c]).buffer;
}

const HEADER = (bindings: string) => /* wgsl */ `
struct Params { n: u32, a: u32, b: u32, c: u32 }
${bindings}
@compute @workgroup_size(${ELEMENTWISE_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${ELEMENTWISE_THREADS}u;
  if (i >= params.n) { return; }`;

/** out[t, j] = table[ids[t], j]; params a = row width. */
export function embeddingWgsl(tableType: 'f32' | 'f16' = 'f32'): string {
  return `${tableType === 'f16' ? 'enable f16;' : ''}${HEADER(`@group(0) @binding(0) var<storage, read> table: array<${tableType}>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;`)}
  out[i] = f32(table[ids[i / params.a] * params.a + i % params.a]);
}`;
}

/** x += y. */
export function addWgsl(): string {
  return `${HEADER(`@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;`)}
  x[i] += y[i];
}`;
}

/** gate = silu(gate) * up. */
export function swigluWgsl(): string {
  return `${HEADER(`@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;`)}
  let g = gate[i];
  gate[i] = g / (1.0 + exp(-g)) * up[i];
}`;
}

/** out[t, h, d] = src[h, t, d]; params a = T, b = heads, c = D. */
export function headsToTokensWgsl(): string {
  return `${HEADER(`@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;`)}
  let d = i % params.c;
  let h = (i / params.c) % params.b;
  let t = i / (params.c * params.b);
  out[i] = src[(h * params.a + t) * params.c + d];
}`;
}

/** Workgroups for n threads as (x, y) within WebGPU's 65535 per dimension. */
export function grid(n: number, threads: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / threads));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
}
