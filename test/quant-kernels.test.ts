// Q4_0, Q4_K, Q5_K and Q6_K weights kept quantised on the GPU (weights/quant-gpu.ts planes) and dequantised
// inside every matmul kernel that reads them: each GEMV (plain, residual add, SwiGLU) and prefill matmul
// version (tiled-v1 and, where the device has subgroup matrices, the tensor-core tiles) on random blocks
// (every byte random, f16 scales from subnormal to 2^-5, either sign), odd row counts, outputs poisoned
// with NaN, against float64 products over reference/quant-reference.ts's dequantisation (the formulas
// written per value, sharing no code with the planes or the WGSL); NaN in x must reach its outputs. The
// tensor-core tiles' weight fetch (qx8) is also run alone, so lavapipe (no subgroup matrices) checks it. Then a
// GGUF with every format (the test GGUF builder) generates the same greedy ids on the CPU and WebGPU, its
// matrices planned as quantised kernels. Error rule: weights are exact in f32, so kernels with f32 x leave
// the f32 sums' error (<= 2e-5 of sum |w x|); the tensor-core tiles round w and x to f16 first, so their
// reference multiplies the rounded values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { webgpuDevice } from './support.js';
import { cpuDevice } from '../src/runtime/device.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { GEMV_VERSIONS, MATMUL_VERSIONS, type MatmulVersion } from '../src/kernels/versions.js';
import { matmulParams } from '../src/kernels/matmul-wgsl.js';
import { quantHalvesWgsl } from '../src/kernels/quant-wgsl.js';
import { GPU_QUANTS, type GpuQuant, quantGpuBytes, quantTilesFromBlocks } from '../src/weights/quant-gpu.js';
import { dequantizeReference, halfToNumber, QUANT_REFERENCE } from '../src/reference/quant-reference.js';
import { roundHalf, toHalfBits } from '../src/f16.js';
import { ggufModel } from '../src/model/load/gguf.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { MIXED, quantisedGguf } from './quant-gguf.js';
import { randomBlocks, xorshift } from './quant-blocks-support.js';
import { heldWeightBytes } from '../src/api/plan.js';

const device = await webgpuDevice();
const gpu = device?.gpu;
/** Random blocks whose f16 scales keep the products in range: 2^-19..2^-5 in size, either sign. */
const randomQuantBlocks = (q: GpuQuant, blocks: number, seed: number) =>
  randomBlocks(q, blocks, seed, (rand) => (rand() < 0.5 ? -1 : 1) * (1 + rand()) * 2 ** (Math.floor(rand() * 14) - 19));

function randomX(n: number, seed: number): Float32Array {
  const rand = xorshift(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

interface Matrix {
  tiles: Uint32Array;
  /** Float64 values [n * k] from the reference dequantisation. */
  values: Float64Array;
}

function matrix(q: GpuQuant, n: number, k: number, seed: number): Matrix {
  const bytes = randomQuantBlocks(q, (n * k) / QUANT_REFERENCE[q].values, seed);
  const tiles = quantTilesFromBlocks(q, bytes, n, k);
  assert.equal(tiles.byteLength, quantGpuBytes(q, n, k));
  return { tiles, values: dequantizeReference(q, bytes, n, k) };
}

/** y[m, n] = x W^T + b in float64 and sum |x w| per output (the scale of f32 sums' error). */
function reference(x: Float32Array, m: number, w: ArrayLike<number>, n: number, k: number, half: boolean) {
  const y = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let t = 0; t < m; t++)
    for (let r = 0; r < n; r++) {
      let s = 0;
      let a = 0;
      for (let i = 0; i < k; i++) {
        const p = half ? roundHalf(x[t * k + i]) * roundHalf(w[r * k + i]) : x[t * k + i] * w[r * k + i];
        s += p;
        a += Math.abs(p);
      }
      y[t * n + r] = s;
      scale[t * n + r] = a;
    }
  return { y, scale };
}

async function runKernel(
  g: GpuContext,
  wgsl: string,
  key: string,
  grid: [number, number],
  m: number,
  n: number,
  k: number,
  inputs: { x: Float32Array; w: Uint32Array; second?: Uint32Array | Float32Array; y: Float32Array; bias: boolean },
): Promise<Float32Array> {
  const pipe = await g.pipeline(key, () => wgsl);
  const bufs = [
    await g.upload(inputs.x, 'x'),
    await g.upload(inputs.w, 'w'),
    inputs.second ? await g.upload(inputs.second, 'bias or wu') : await g.createBuffer(16, 'no bias'),
    await g.upload(inputs.y, 'y'),
  ];
  const params = g.uniform(matmulParams(m, n, k, inputs.bias));
  try {
    await g.run(key, (pass) => {
      pass.setPipeline(pipe);
      pass.setBindGroup(0, g.bind(pipe, [...bufs, params]));
      pass.dispatchWorkgroups(...grid);
    });
    return new Float32Array(await g.read(bufs[3], m * n * 4));
  } finally {
    params.destroy();
    bufs.forEach((b) => g.release(b));
  }
}

function check(label: string, got: Float32Array, want: Float64Array, scale: Float64Array, rel = 2e-5): void {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i])) assert.fail(`${label}: y[${i}] is NaN (unwritten or a bad operation)`);
    const err = Math.abs(got[i] - want[i]) / (scale[i] + 1e-30);
    if (err > rel)
      assert.fail(`${label}: y[${i}] = ${got[i]}, float64 ${want[i]} (error ${err.toExponential(2)} of sum |wx|)`);
    worst = Math.max(worst, err);
  }
  console.log(`${label}: worst error ${worst.toExponential(2)} of sum |wx|`);
}

const skips: string[] = [];
function unsupported(v: MatmulVersion, q: GpuQuant, k: number): string | null {
  const why = gpu ? v.unsupported(gpu, q, k) : 'no WebGPU device';
  if (why) {
    skips.push(`${v.name} ${q}: ${why}`);
    console.log(`SKIPPED ${v.name} over ${q}: ${why}`);
  }
  return why;
}

// One row (GEMV) and chunks of rows (prefill), per format; K: whole blocks, odd block counts where possible.
const K = { q4_0: [2080, 4128], q4_k: [2304, 4352], q5_k: [2304, 4352], q6_k: [2304, 4352] } as const;

describe('quantised weights in the GPU matmul kernels', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  for (const q of GPU_QUANTS) {
    it(`${q}: every GEMV version, N 97 and 511, against float64`, async () => {
      for (const [n, k] of [
        [97, K[q][1]],
        [511, K[q][0]],
      ]) {
        const w = matrix(q, n, k, n + k);
        const x = randomX(k, 3);
        const bias = randomX(n, 4);
        const { y, scale } = reference(x, 1, w.values, n, k, false);
        for (let r = 0; r < n; r++) y[r] += bias[r];
        for (const v of GEMV_VERSIONS) {
          if (unsupported(v, q, k)) continue;
          const run = (xs: Float32Array) =>
            runKernel(gpu!, v.wgsl(q), `quant-test-${v.name}-${q}`, v.grid(1, n), 1, n, k, {
              x: xs,
              w: w.tiles,
              second: bias,
              y: new Float32Array(n).fill(Number.NaN),
              bias: true,
            });
          check(`${v.name} ${q} N ${n} K ${k}`, await run(x), y, scale);
          const xn = new Float32Array(x);
          xn[k - 3] = Number.NaN;
          const yn = await run(xn);
          assert.ok(yn.every(Number.isNaN), `${v.name} ${q}: NaN in x reaches every output`);
        }
      }
    });

    it(`${q}: fused GEMVs (residual add, SwiGLU) against float64`, async () => {
      const [n, k] = [193, K[q][0]];
      const a = matrix(q, n, k, 11);
      const b = matrix(q, n, k, 12);
      const x = randomX(k, 5);
      const y0 = randomX(n, 6);
      const ra = reference(x, 1, a.values, n, k, false);
      const rb = reference(x, 1, b.values, n, k, false);
      const silu = (g: number) => g / (1 + Math.exp(-g));
      const add = ra.y.map((s, r) => s + y0[r]);
      const glu = ra.y.map((s, r) => silu(s) * rb.y[r]);
      // SwiGLU's error: the gate's error times |up| plus the up's error times |silu(gate)| (silu' <= 1.1).
      const gluScale = ra.scale.map((s, r) => 1.1 * s * Math.abs(rb.y[r]) + rb.scale[r] * Math.abs(silu(ra.y[r])));
      for (const v of GEMV_VERSIONS.filter((g) => g.fused)) {
        if (unsupported(v, q, k)) continue;
        const grid = v.grid(1, n);
        const inputs = { x, w: a.tiles, bias: false };
        const yAdd = await runKernel(gpu!, v.fused!(q, 'accumulate'), `quant-test-${v.name}-${q}-add`, grid, 1, n, k, {
          ...inputs,
          y: new Float32Array(y0),
        });
        check(`${v.name} ${q} accumulate`, yAdd, add, ra.scale);
        const yGlu = await runKernel(gpu!, v.fused!(q, 'swiglu'), `quant-test-${v.name}-${q}-glu`, grid, 1, n, k, {
          ...inputs,
          second: b.tiles,
          y: new Float32Array(n).fill(Number.NaN),
        });
        check(`${v.name} ${q} swiglu`, yGlu, glu, gluScale);
      }
    });

    it(`${q}: every prefill matmul version, M 67 N 97, against float64`, async () => {
      const [m, n, k] = [67, 97, K[q][0]];
      const w = matrix(q, n, k, 21);
      const x = randomX(m * k, 7);
      const exact = reference(x, m, w.values, n, k, false);
      const halves = reference(x, m, w.values, n, k, true);
      let ran = 0;
      for (const v of MATMUL_VERSIONS) {
        if (unsupported(v, q, k)) continue;
        const ref = v.halfActivations ? halves : exact;
        const run = (xs: Float32Array) =>
          runKernel(gpu!, v.wgsl(q, 'f32'), `quant-test-${v.name}-${q}`, v.grid(m, n), m, n, k, {
            x: xs,
            w: w.tiles,
            y: new Float32Array(m * n).fill(Number.NaN),
            bias: false,
          });
        check(`${v.name} ${q} M ${m} N ${n} K ${k}`, await run(x), ref.y, ref.scale);
        const xn = new Float32Array(x);
        xn[(m - 1) * k + 9] = Number.NaN;
        const yn = await run(xn);
        for (let t = 0; t < m; t++)
          assert.equal(Number.isNaN(yn[t * n + n - 1]), t === m - 1, `${v.name} ${q}: NaN in x row ${m - 1} only`);
        ran++;
      }
      assert.ok(ran >= 1, 'the portable tiled matmul runs everywhere');
    });
  }

  it("the tensor-core tiles' staging (qx8: 8 weights as f16 pairs) on its own, every format", async () => {
    // The tensor-core versions need subgroup matrices (absent on lavapipe); their weight fetch runs here alone.
    const [n, k] = [5, 512];
    for (const q of GPU_QUANTS) {
      const w = matrix(q, n, k, 31);
      const wgsl = `enable f16;
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> params: Params;
${quantHalvesWgsl(q)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let per = params.k / 8u;
  if (id.x < params.n * per) { y[id.x] = qx8(id.x / per, (id.x % per) * 8u); }
}`;
      const g = gpu!;
      const pipe = await g.pipeline(`quant-test-qx8-${q}`, () => wgsl);
      const bufs = [await g.upload(w.tiles, 'w'), await g.upload(new Uint32Array((n * k) / 2).fill(0x7e007e00), 'y')];
      const params = g.uniform(matmulParams(0, n, k, false));
      try {
        await g.run('qx8', (pass) => {
          pass.setPipeline(pipe);
          pass.setBindGroup(0, g.bind(pipe, [...bufs, params]));
          pass.dispatchWorkgroups(Math.ceil((n * k) / 8 / 64));
        });
        const halves = new Uint16Array(await g.read(bufs[1], n * k * 2));
        for (let i = 0; i < n * k; i++) {
          const got = halfToNumber(halves[i]);
          const want = w.values[i];
          // pack2x16float rounds to a neighbouring f16: within one f16 ulp (2^-10 relative; subnormals 2^-24).
          if (!(Math.abs(got - want) <= Math.abs(want) * 2 ** -10 + 2 ** -24))
            assert.fail(`${q} qx8 value ${i}: ${got}, float64 ${want}`);
        }
      } finally {
        params.destroy();
        bufs.forEach((b) => g.release(b));
      }
    }
  });

  it('the GPU layout of each format is the size its header says', () => {
    const perWeight = { q4_0: 0.625, q4_k: 0.59375, q5_k: 0.71875, q6_k: 0.828125 };
    for (const q of GPU_QUANTS) assert.equal(quantGpuBytes(q, 3, 2048) / (3 * 2048), perWeight[q]);
    assert.equal(halfToNumber(toHalfBits(1.5)), 1.5);
  });
});

describe('a GGUF with Q4_0, Q4_K, Q5_K and Q6_K tensors', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  it('generates the same greedy ids on the CPU and on WebGPU, its matrices read quantised', async () => {
    const model = ggufModel(quantisedGguf(MIXED), 'mixed.gguf');
    const schedule = scheduleFromSpec(parseMethodSpec('flash'));
    const greedy = async (dev: typeof cpuDevice) => {
      const d = await createDecoder(dev, model, schedule, { maxTokens: 64, chunk: 16 });
      try {
        const ids: number[] = [];
        let logits = await d.forward([1, 400, 87, 23, 301, 9, 77, 5, 160, 44, 12, 250, 3, 99, 61, 130, 420, 17, 8]);
        for (let i = 0; i < 24; i++) {
          let best = 0;
          for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
          ids.push(best);
          logits = await d.forward([best]);
        }
        const held = d as { matmulPlans?: string[]; weightBytes?: number };
        return { ids, plans: held.matmulPlans ?? [], weightBytes: held.weightBytes };
      } finally {
        d.destroy();
      }
    };
    const cpu = await greedy(cpuDevice);
    const webgpu = await greedy(device!);
    console.log(webgpu.plans.join('\n'));
    for (const q of ['Q4_0', 'Q4_K', 'Q5_K', 'Q6_K'])
      assert.ok(
        webgpu.plans.some((p) => p.includes(`${q} weights`)),
        `a matmul over ${q} weights ran: ${webgpu.plans}`,
      );
    // What `plan` says the weights take on WebGPU is what the decoder uploaded.
    const w = model.weights;
    const tensors = [
      w.tokenEmbedding,
      w.outputNorm,
      w.output!,
      ...w.layers.flatMap((l) => Object.values(l).filter((t) => t !== undefined)),
    ];
    assert.equal(heldWeightBytes(tensors, 'webgpu', 'f32', w.tokenEmbedding), webgpu.weightBytes);
    assert.ok(new Set(cpu.ids).size > 3, 'a random model that does not repeat one token');
    assert.deepEqual(webgpu.ids, cpu.ids);
  });

  it('what was skipped', () => {
    if (skips.length) console.log(`${skips.length} skipped:\n${skips.join('\n')}`);
  });
});
