// The fused RoPE of q and k and move of v (kernels/rope-qkv-wgsl.ts) against the float64 rotation of
// reference/decoder.ts: GQA 3:1 and 4:2, head dims 38, 64 and 128, both pair layouts, f32 and f16 rows out,
// rotated and not (a positional method's unrotated q and k), a chunk and one decoded token, outputs poisoned.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { halfToFloat32 } from '../src/f16.js';
import { grid } from '../src/kernels/elementwise-wgsl.js';
import { ROPE_QKV_THREADS, ropeQkvParams, ropeQkvThreads, ropeQkvWgsl } from '../src/kernels/rope-qkv-wgsl.js';
import { ropeRef } from '../src/reference/decoder.js';
import { assertNoNaN, webgpuDevice } from './support.js';

const device = await webgpuDevice();
const rand = (n: number, seed: number) => randomNormal([n], seed).data as Float32Array;

/** Token-major [T, heads, D] from head-major rows [heads, T, D]. */
function tokenMajor(x: Float32Array, T: number, heads: number, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++)
    for (let t = 0; t < T; t++) out.set(x.subarray((h * T + t) * D, (h * T + t + 1) * D), (t * heads + h) * D);
  return out;
}

function maxErr(got: Float32Array, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m;
}

describe('fused RoPE of q, k and v', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;
  const cases = [
    { T: 5, heads: 6, kvHeads: 2, D: 38, layout: 'half', out: 'f32', rotate: true },
    { T: 1, heads: 8, kvHeads: 4, D: 64, layout: 'interleaved', out: 'f32', rotate: true },
    { T: 7, heads: 4, kvHeads: 2, D: 128, layout: 'half', out: 'f16', rotate: true },
    { T: 1, heads: 3, kvHeads: 1, D: 38, layout: 'interleaved', out: 'f16', rotate: true },
    { T: 3, heads: 6, kvHeads: 2, D: 64, layout: 'half', out: 'f32', rotate: false },
    { T: 5, heads: 6, kvHeads: 2, D: 38, layout: 'half', out: 'f16', rotate: true, stacked: true },
    { T: 1, heads: 8, kvHeads: 2, D: 64, layout: 'interleaved', out: 'f32', rotate: true, stacked: true },
  ] as const;
  for (const c of cases) {
    const stacked = 'stacked' in c;
    const name = `T ${c.T}, heads ${c.heads}:${c.kvHeads}, D ${c.D}, ${c.layout}, ${c.out} out, rotate ${c.rotate}`;
    it(`${name}${stacked ? ', rows stacked [q | k | v]' : ''}`, async () => {
      const { T, heads, kvHeads, D } = c;
      const first = 4093;
      const theta = 10000;
      const half = D / 2;
      const table = new Float32Array(2 * T * half);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < half; i++) {
          const angle = (first + t) * theta ** ((-2 * i) / D);
          table[t * half + i] = Math.cos(angle);
          table[(T + t) * half + i] = Math.sin(angle);
        }
      const x = [rand(T * heads * D, 1), rand(T * kvHeads * D, 2), rand(T * kvHeads * D, 3)];
      const counts = [heads, kvHeads, kvHeads].map((h) => T * h * D);
      const unit = c.out === 'f16' ? 2 : 4;
      const pipe = await gpu.pipeline(`test-rope-qkv-${c.out}`, () => ropeQkvWgsl(c.out));
      // Stacked: one buffer of token rows [q | k | v] (the stacked projection's output), bound three times.
      const rows = new Float32Array(counts[0] + 2 * counts[1]);
      const widths = [heads, kvHeads, kvHeads].map((h) => h * D);
      for (let t = 0; t < T; t++)
        for (let i = 0, at = t * (widths[0] + 2 * widths[1]); i < 3; at += widths[i], i++)
          rows.set(x[i].subarray(t * widths[i], (t + 1) * widths[i]), at);
      const sources = stacked ? [rows] : x;
      const uploaded = await Promise.all([...sources, table].map((a, i) => gpu.upload(a, `in ${i}`)));
      const inputs = stacked ? [uploaded[0], uploaded[0], uploaded[0], uploaded[1]] : uploaded;
      // Poisoned: NaN in f32, 0x7e00 (NaN) in f16.
      const outs = await Promise.all(
        counts.map((n, i) =>
          gpu.upload(c.out === 'f16' ? new Uint16Array(n).fill(0x7e00) : new Float32Array(n).fill(NaN), `out ${i}`),
        ),
      );
      const params = ropeQkvParams({
        tokens: T,
        heads,
        kvHeads,
        headDim: D,
        rotate: c.rotate,
        interleaved: c.layout === 'interleaved',
        stacked,
      });
      const u = gpu.uniform(params);
      try {
        await gpu.run('rope qkv', (pass) => {
          pass.setPipeline(pipe);
          pass.setBindGroup(0, gpu.bind(pipe, [...inputs, ...outs, u]));
          pass.dispatchWorkgroups(...grid(ropeQkvThreads(T, heads, kvHeads, D), ROPE_QKV_THREADS));
        });
        const tol = c.out === 'f16' ? 4e-3 : 2e-5;
        for (const [i, name] of ['q', 'k', 'v'].entries()) {
          const raw = await gpu.read(outs[i], counts[i] * unit);
          const got = c.out === 'f16' ? halfToFloat32(new Uint16Array(raw)) : new Float32Array(raw);
          assertNoNaN(name, got);
          const h = i === 0 ? heads : kvHeads;
          const want = name !== 'v' && c.rotate ? ropeRef(x[i], T, h, D, first, theta, c.layout) : x[i];
          const err = maxErr(tokenMajor(got, T, h, D), want);
          assert.ok(err < tol, `${name}: max error ${err}`);
        }
      } finally {
        [...uploaded, ...outs].forEach((b) => gpu.release(b));
        u.destroy();
      }
    });
  }
});
