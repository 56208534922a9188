// The V pre-pass of the tensor-core flash kernel (flash-tc-wgsl.ts, vcheck 'hoisted'): does KV head h's V hold a
// NaN or an infinity in the rows a flash call reads? Checking each staged V tile inside the key loop cost flash
// tc2 5-12% of its speed on the H200 (issue 12); V is read once here instead (16K keys x 8 KV heads x D 128 f16:
// 32 MiB, some microseconds against milliseconds of attention). Grid [V_FINITE_GROUPS, KV heads]: each
// workgroup tests the bits of a strided share of its head's rows and writes its own word (0 or 1) of
// flags[h * V_FINITE_GROUPS + x], so every word is written every run: no clear and no global atomics. The flash
// kernel ORs its head's words once, at its start. Plain bookkeeping, no paper; the host twin is vNonFiniteHeads.
import { UnsupportedError } from '../errors.js';
import { PACKED_HALVES_NON_FINITE_WGSL } from './sgmat-tiles-wgsl.js';

/** Workgroups (flag words) per KV head: enough loads in flight to stream V near bandwidth with 8 KV heads. */
export const V_FINITE_GROUPS = 64;
export const V_FINITE_THREADS = 256;

/** Null when the pre-pass can read this head dim (rows of whole 16-byte chunks of f16), else why not. */
export function vFiniteUnsupported(headDim: number): string | null {
  return Number.isInteger(headDim) && headDim > 0 && headDim % 8 === 0
    ? null
    : `head dim ${headDim} is not a positive multiple of 8 (the V pre-pass reads rows as 16-byte chunks of f16)`;
}

/** Bytes of the flag words for `kvHeads` heads. */
export function vFiniteFlagBytes(kvHeads: number): number {
  return kvHeads * V_FINITE_GROUPS * 4;
}

/** Uniform { chunks per head read, chunks between heads, pad, pad }: rows [0, rows) of head h, at row
 * h * rowsPerHead (rowsPerHead 0: rows, packed), headDim f16 each. */
export function vFiniteParams(p: { rows: number; headDim: number; rowsPerHead?: number }): ArrayBuffer {
  const why = vFiniteUnsupported(p.headDim);
  if (why) throw new UnsupportedError(why);
  const ch = p.headDim / 8;
  const stride = p.rowsPerHead || p.rows;
  if (stride < p.rows) throw new UnsupportedError(`${p.rows} rows per head read but only ${stride} between heads`);
  if (stride * ch >= 2 ** 32) throw new UnsupportedError(`${stride} rows of head dim ${p.headDim} per head: too many`);
  return new Uint32Array([p.rows * ch, stride * ch, 0, 0]).buffer;
}

export function vFiniteGrid(kvHeads: number): [number, number] {
  return [V_FINITE_GROUPS, kvHeads];
}

export function vFiniteWgsl(): string {
  const stride = V_FINITE_GROUPS * V_FINITE_THREADS;
  return /* wgsl */ `
struct Params { chunks: u32, head_chunks: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> flags: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
${PACKED_HALVES_NON_FINITE_WGSL}
var<workgroup> seen: atomic<u32>;

@compute @workgroup_size(${V_FINITE_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  // Zeroed here, not left to WGSL's workgroup init (LONGCTX_DAWN_TOGGLES can turn that off).
  if (lid == 0u) { atomicStore(&seen, 0u); }
  workgroupBarrier();
  let base = wg.y * params.head_chunks;
  let n = params.chunks;
  var bad = false;
  // Four independent loads per trip keep more of them in flight than a loop that waits for each.
  var c = wg.x * ${V_FINITE_THREADS}u + lid;
  for (; c + ${3 * stride}u < n; c += ${4 * stride}u) {
    let a = halves_non_finite(v[base + c]);
    let b = halves_non_finite(v[base + c + ${stride}u]);
    let d = halves_non_finite(v[base + c + ${2 * stride}u]);
    let e = halves_non_finite(v[base + c + ${3 * stride}u]);
    bad = bad || a || b || d || e;
  }
  for (; c < n; c += ${stride}u) { bad = bad || halves_non_finite(v[base + c]); }
  if (bad) { atomicOr(&seen, 1u); }
  workgroupBarrier();
  if (lid == 0u) { flags[wg.y * ${V_FINITE_GROUPS}u + wg.x] = atomicLoad(&seen); }
}
`;
}

/** Host twin: which of v's heads [kvHeads, rowsPerHead, headDim] (f16 bits) hold a NaN or an infinity in rows
 * [0, rows). */
export function vNonFiniteHeads(v: Uint16Array, kvHeads: number, rows: number, headDim: number, rowsPerHead = rows) {
  return Array.from({ length: kvHeads }, (_, h) => {
    const from = h * rowsPerHead * headDim;
    for (let x = from; x < from + rows * headDim; x++) if ((v[x] & 0x7c00) === 0x7c00) return true;
    return false;
  });
}
