// Shader sizes checked before compiling: the workgroup memory a kernel declares and its fixed-size arrays,
// read from the generated WGSL. A kernel sized by a head dim (CCA's tiles, DSA's gathered keys, a decode
// kernel's registers) would otherwise reach the compiler with 65,536 x 8 floats and fail there as a
// DeviceError; this refuses it as an UnsupportedError naming the numbers, whatever kernel it is. Sizes are
// WGSL's layout rules without the compiler's extra rounding, so a kernel refused here cannot compile.
import { UnsupportedError } from '../errors.js';

/** WGSL's cap on the element count of a fixed-size array outside storage and uniform buffers (Tint). */
export const MAX_ARRAY_COUNT = 65535;

interface Layout {
  size: number;
  align: number;
}

const SCALARS: Record<string, number> = { f32: 4, i32: 4, u32: 4, bool: 4, f16: 2 };
const SHORT_VEC: Record<string, string> = { f: 'f32', i: 'i32', u: 'u32', h: 'f16' };
const roundUp = (align: number, n: number) => Math.ceil(n / align) * align;

/** Splits `T, N` at its top-level comma. */
function templateArgs(inner: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === '<') depth++;
    else if (inner[i] === '>') depth--;
    else if (inner[i] === ',' && depth === 0) {
      out.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(inner.slice(start).trim());
  return out.filter((s) => s !== '');
}

/** Size and alignment of a WGSL type, or undefined for what this does not know (structs, matrices). */
export function wgslLayout(type: string): Layout | undefined {
  const t = type.trim();
  if (t in SCALARS) return { size: SCALARS[t], align: SCALARS[t] };
  const m = /^(\w+)<(.*)>$/s.exec(t);
  const short = /^vec([234])([fiuh])$/.exec(t);
  if (short) return wgslLayout(`vec${short[1]}<${SHORT_VEC[short[2]]}>`);
  if (!m) return undefined;
  const [, head, inner] = m;
  const args = templateArgs(inner);
  if (head === 'atomic') return { size: 4, align: 4 };
  const vec = /^vec([234])$/.exec(head);
  if (vec) {
    const e = wgslLayout(args[0]);
    if (!e) return undefined;
    const n = Number(vec[1]);
    return { size: n * e.size, align: (n === 3 ? 4 : n) * e.size };
  }
  if (head === 'array' && args.length === 2 && /^\d+u?$/.test(args[1])) {
    const e = wgslLayout(args[0]);
    if (!e) return undefined;
    return { size: Number.parseInt(args[1], 10) * roundUp(e.align, e.size), align: e.align };
  }
  return undefined;
}

/** Every `var` outside storage and uniform buffers (workgroup, private, function) with its address space and type. */
function declarations(code: string): Array<{ space: string; name: string; type: string }> {
  const out: Array<{ space: string; name: string; type: string }> = [];
  for (const m of code.matchAll(/\bvar(?:<(\w+)(?:,\s*\w+)?>)?\s+(\w+)\s*:\s*([^;=]+?)\s*[;=]/g)) {
    const space = m[1] ?? 'function';
    if (space !== 'storage' && space !== 'uniform') out.push({ space, name: m[2], type: m[3] });
  }
  return out;
}

/** Largest fixed array count in a type, at any depth (outside buffers only arrays take a number). */
function largestCount(type: string): number {
  return Math.max(0, ...[...type.matchAll(/,\s*(\d+)u?\s*>/g)].map((m) => Number.parseInt(m[1], 10)));
}

/** Workgroup bytes the WGSL declares (a lower bound: the compiler may round each variable up). */
export function workgroupBytes(code: string): number {
  let total = 0;
  for (const d of declarations(code)) if (d.space === 'workgroup') total += wgslLayout(d.type)?.size ?? 0;
  return total;
}

/** Refuses, before compiling, a kernel whose workgroup memory or fixed arrays exceed what WGSL and the device allow. */
export function checkShaderSizes(key: string, code: string, maxWorkgroupBytes: number): void {
  const hint = 'use a smaller head dim or block, another --method (dense), or the CPU backend';
  for (const d of declarations(code)) {
    const count = largestCount(d.type);
    if (count > MAX_ARRAY_COUNT)
      throw new UnsupportedError(
        `kernel ${key} needs an array of ${count} elements (${d.name}), more than WGSL's ${MAX_ARRAY_COUNT}; ${hint}`,
      );
  }
  const bytes = workgroupBytes(code);
  if (bytes > maxWorkgroupBytes)
    throw new UnsupportedError(
      `kernel ${key} needs ${bytes} bytes of workgroup memory, more than this device's ${maxWorkgroupBytes}; ${hint}`,
    );
}
