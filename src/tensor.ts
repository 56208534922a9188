// A small host tensor: shape, dtype and a TypedArray. GPU residency is the runtime's business.
import { float32ToHalf, halfToFloat32 } from './f16.js';
import { ShapeError } from './errors.js';

export type DType = 'f32' | 'f16';
export type HostData = Float32Array | Uint16Array;

export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** f32 values, or f16 bits. Row-major. */
  readonly data: HostData;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor(shape: readonly number[], dtype: DType, data?: HostData): Tensor {
  const n = numel(shape);
  const buf = data ?? (dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n));
  if (buf.length !== n) throw new ShapeError(`tensor of shape [${shape}] needs ${n} values, got ${buf.length}`);
  if ((dtype === 'f32') !== buf instanceof Float32Array) throw new ShapeError(`data does not match dtype ${dtype}`);
  return { shape: [...shape], dtype, data: buf };
}

/** The values as f32 (decoding f16). Shares memory when already f32. */
export function asFloat32(t: Tensor): Float32Array {
  return t.dtype === 'f32' ? (t.data as Float32Array) : halfToFloat32(t.data as Uint16Array);
}

export function toDType(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  return dtype === 'f32' ? tensor(t.shape, 'f32', asFloat32(t)) : tensor(t.shape, 'f16', float32ToHalf(t.data));
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f32' ? 4 : 2;
}

/** Deterministic pseudo-random normal values (mulberry32 + Box-Muller), for tests and benchmarks. */
export function randomNormal(shape: readonly number[], seed: number, dtype: DType = 'f32', std = 1): Tensor {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const n = numel(shape);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(next(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const a = 2 * Math.PI * next();
    values[i] = r * Math.cos(a);
    if (i + 1 < n) values[i + 1] = r * Math.sin(a);
  }
  return toDType(tensor(shape, 'f32', values), dtype);
}

/** The largest |a[i] - b[i]|: equal values (-Infinity too) count 0, a NaN on either side counts Infinity. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue; // also -Infinity against -Infinity
    const d = Math.abs(a[i] - b[i]);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst;
}
