// The NaN policy (docs/HARDENING.md) in CCA's decoding on WebGPU: the resident layer (attention/layers/cca-gpu.ts)
// decodes by split-KV over its cores and ring rows (kernels/cca-decode-wgsl.ts). A NaN is planted in a key
// pooled into a core, in a raw key a decoded token sees in its window, in a decoded query and in a group's
// pooling query; every decode step's rows must be NaN (output and LSE) exactly where the CPU truth
// (attention/cca-cache.ts on the CPU) has them and where CCA's semantics say, and match it elsewhere.
//
// The control: under CCA no key at or before a query's position is unseen. Position j < p is raw in the
// window (j >= cs g) or inside a core c < cs that pooled it with a score of the group's last query against
// it (a NaN key makes that score NaN, so the core is NaN), and decoding has no key past the causal limit.
// So a NaN key always reaches the rows of its heads. What a row can miss is a NaN core whose group it still
// sees raw: a NaN in group c's pooling query poisons core c at once, but rows p < (c + 1) g + w - 1 read the
// group's raw (finite) keys, not the core, and must stay finite; so must a NaN query's later rows.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CcaGpuLayer } from '../src/attention/layers/cca-gpu.js';
import { CcaKVCache } from '../src/attention/cca-cache.js';
import { ccaDecodeKeys } from '../src/kernels/cca-decode-wgsl.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal, type Tensor } from '../src/tensor.js';
import { webgpuDevice } from './support.js';
import { chunkBuffers, readFloats, tokens, writeTensor } from './cca-dsa-layer-support.js';

const device = await webgpuDevice();
after(() => device?.destroy());

const [H, HKV, D, GROUP, WINDOW] = [4, 2, 64, 4, 8];
const G = H / HKV;
const [PREFILL, TOTAL] = [40, 64];
const base = { heads: H, kvHeads: HKV, headDim: D, group: GROUP, window: WINDOW };
const [NAN, INF] = [Number.NaN, Number.POSITIVE_INFINITY];

/** Sets one value of a tensor's data (f16: the bits of a quiet NaN or of +Inf). */
function set(t: Tensor, at: number, x: number): void {
  if (t.data instanceof Float32Array) t.data[at] = x;
  else t.data[at] = Number.isNaN(x) ? 0x7e00 : 0x7c00;
}

/** Heads whose decode row at `p` is NaN (the whole row and its LSE), checked for wholeness. */
function nanHeads(o: Float32Array, lse: Float32Array, label: string): number[] {
  const heads: number[] = [];
  for (let h = 0; h < H; h++) {
    const nans = o.subarray(h * D, (h + 1) * D).filter((x) => Number.isNaN(x)).length;
    if (nans > 0 || Number.isNaN(lse[h])) {
      assert.equal(nans, D, `${label} head ${h}: ${nans} of ${D} outputs NaN (the whole row must be)`);
      assert.ok(Number.isNaN(lse[h]), `${label} head ${h}: output NaN but LSE ${lse[h]}`);
      heads.push(h);
    }
  }
  return heads;
}

interface Case {
  name: string;
  /** Plants the bad value into q, k of the whole sequence. */
  plant(q: Tensor, k: Tensor): void;
  /** Heads of the decode row at position p that see it. */
  want(h: number, p: number): boolean;
  /** How row p sees it (checked against ccaDecodeKeys, so the case tests the path it names). */
  path?(p: number): 'core' | 'raw' | 'none';
  /** A NaN planted here stays unseen by some decoded rows of its KV head (the control). */
  control?: boolean;
}

const at = (head: number, pos: number, d: number) => (head * TOTAL + pos) * D + d;
const CASES: Case[] = [
  {
    name: '(a) NaN in prefill key 5 (KV head 1): pooled into core 1, which every decoded row sees',
    plant: (_q, k) => set(k, at(1, 5, 3), NAN),
    want: (h) => h >= G,
    path: (p) => (ccaDecodeKeys(p, GROUP, WINDOW).cores > 1 ? 'core' : 'raw'),
  },
  {
    name: '(b) NaN in decoded key 49 (KV head 0): raw in the window of rows 49..58, then through core 12',
    plant: (_q, k) => set(k, at(0, 49, 11), NAN),
    want: (h, p) => h < G && p >= 49,
    path: (p) => (p < 49 ? 'none' : ccaDecodeKeys(p, GROUP, WINDOW).rawFirst <= 49 ? 'raw' : 'core'),
  },
  {
    name: '(c) NaN in the query of decoded token 45, head 3 (no group end): its row only',
    plant: (q) => set(q, at(3, 45, 7), NAN),
    want: (h, p) => h === 3 && p === 45,
    control: true,
  },
  {
    name: "control: Inf in group 11's pooling query (token 47, head 1): core 11 is NaN, unseen by rows 48..54",
    plant: (q) => set(q, at(1, 47, 2), INF),
    // Rows p see core 11 once floor((p + 1 - w) / g) > 11, i.e. p >= 55; before, its raw keys 44..47.
    want: (h, p) => (h === 1 && p === 47) || (h < G && p >= 55),
    control: true,
  },
];

describe(
  'CCA decoding on WebGPU follows the NaN policy like the CPU cache',
  { skip: device ? false : 'no WebGPU' },
  () => {
    for (const dtype of ['f32', 'f16'] as const)
      for (const c of CASES) {
        test(`${dtype}: ${c.name}`, async () => {
          const shape = { ...base, dtype };
          const tol = dtype === 'f32' ? 1e-4 : 5e-3;
          const gpu = device!.gpu!;
          const layer = await CcaGpuLayer.create(gpu, {
            ...shape,
            maxTokens: TOTAL,
            maxChunk: PREFILL,
            variant: 'portable',
          });
          const cpu = new CcaKVCache(shape);
          const bufs = await chunkBuffers(gpu, shape, PREFILL);
          const all = [
            randomNormal([H, TOTAL, D], 101, dtype),
            randomNormal([HKV, TOTAL, D], 102, dtype),
            randomNormal([HKV, TOTAL, D], 103, dtype),
          ];
          c.plant(all[0], all[1]);
          // The layer's LSE scratch: the merge writes each decoded row's LSE there (head h at word h).
          const lseBuffer = (layer as unknown as { lse: GPUBuffer }).lse;
          let sawControl = false;
          try {
            for (let start = 0; start < TOTAL; ) {
              const T = start === 0 ? PREFILL : 1;
              const chunk: Tensor[] = all.map((t) => tokens(t, start, start + T));
              chunk.forEach((t, i) => writeTensor(gpu, [bufs.q, bufs.k, bufs.v][i], t));
              // Finite poison: a row left unwritten must fail, not pass as NaN.
              gpu.device.queue.writeBuffer(bufs.out, 0, new Float32Array(H * T * D).fill(7));
              gpu.device.queue.writeBuffer(lseBuffer, 0, new Float32Array(H).fill(7));
              await layer.forward({ ...bufs, start, tokens: T });
              const want = await cpu.forward(cpuDevice, chunk[0], chunk[1], chunk[2]);
              if (T === 1) {
                const p = start;
                const label = `${c.name}, row ${p}`;
                const o = await readFloats(gpu, bufs.out, H * D);
                const lse = await readFloats(gpu, lseBuffer, H);
                const expected = [0, 1, 2, 3].filter((h) => c.want(h, p));
                assert.deepEqual(nanHeads(o, lse, `webgpu ${label}`), expected, `webgpu ${label}`);
                assert.deepEqual(nanHeads(want.o, want.lse, `cpu ${label}`), expected, `cpu ${label}`);
                if (c.path)
                  assert.equal(c.path(p) !== 'none', expected.length > 0, `${label}: seen through ${c.path(p)}`);
                if (c.control && expected.length === 0) sawControl = true;
                for (let h = 0; h < H; h++) {
                  if (expected.includes(h)) continue;
                  assert.ok(
                    Math.abs(lse[h] - want.lse[h]) < tol,
                    `${label} head ${h}: LSE ${lse[h]} vs ${want.lse[h]}`,
                  );
                  for (let d = 0; d < D; d++)
                    assert.ok(Math.abs(o[h * D + d] - want.o[h * D + d]) < tol, `${label} head ${h} dim ${d}`);
                }
              }
              start += T;
            }
            // The paths named were all taken: (a) through a core, (b) raw and then through a core.
            if (c.path) {
              const paths = new Set(Array.from({ length: TOTAL - PREFILL }, (_, i) => c.path!(PREFILL + i)));
              assert.ok(paths.has('core'), 'some decoded row saw the NaN through a core');
              if (c.name.startsWith('(b)')) assert.ok(paths.has('raw'), 'some decoded row saw the NaN raw');
            }
            if (c.control) assert.ok(sawControl, 'some decoded row of the poisoned heads stayed finite');
            assert.equal(layer.cores, cpu.cores);
          } finally {
            layer.destroy();
            for (const b of Object.values(bufs)) gpu.release(b);
          }
        });
      }
  },
);
