// The V pre-pass of the tensor-core flash kernel (kernels/v-finite-wgsl.ts through attention/v-finite.ts): per KV
// head, whether V holds a NaN or an infinity in the rows a call reads, against where the test planted them (no
// shared code) and the host twin. Odd row counts (the kernel's four-loads-a-trip loop and its tail), head dims that
// are not a power of two, a cache read in place (rows between heads > rows read: poisoned rows past the read ones
// must not flag), every NaN form and both infinities, flag words poisoned before each run.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { vFinitePrePass } from '../src/attention/v-finite.js';
import { UnsupportedError } from '../src/errors.js';
import { V_FINITE_GROUPS, vFiniteParams, vNonFiniteHeads } from '../src/kernels/v-finite-wgsl.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
const gpu = device?.gpu;
after(async () => device?.destroy());

/** Deterministic u32s (an LCG: the test needs spread, not quality). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

/** NaN forms (quiet, lowest mantissa bit, negative) and both infinities, as f16 bits. */
const BAD = [0x7e00, 0x7c01, 0xfe00, 0x7c00, 0xfc00];

describe('V pre-pass: per-KV-head non-finite flags', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  const HKV = 3;
  for (const D of [64, 128, 24])
    for (const rows of [97, 1023])
      for (const extra of [0, 37]) {
        const stride = rows + extra;
        test(`D ${D}, ${rows} rows${extra ? `, ${stride} rows between heads (a cache)` : ''}`, async () => {
          const next = lcg(D * 7919 + rows * 31 + extra);
          // Random finite f16 (subnormals and 65504 included): an all-ones exponent is turned into 0b10111.
          const v = new Uint16Array(HKV * stride * D).map(() => {
            const b = next() & 0xffff;
            return (b & 0x7c00) === 0x7c00 ? b ^ 0x4000 : b;
          });
          const at = (h: number, row: number, d: number) => (h * stride + row) * D + d;
          // Head 0 finite; head 1 one bad value at a random row; head 2 at its first and its last element read.
          let form = D + rows + extra; // each case starts at another form, so every form is planted
          const bad = () => BAD[form++ % BAD.length];
          v[at(1, next() % rows, next() % D)] = bad();
          v[at(2, 0, 0)] = bad();
          v[at(2, rows - 1, D - 1)] = bad();
          // Past the rows read (a cache's unfilled rows), head 0 holds NaN: it must stay unflagged.
          if (extra) v[at(0, rows + (next() % extra), next() % D)] = 0x7e00;
          const want = [false, true, true];
          assert.deepEqual(vNonFiniteHeads(v, HKV, rows, D, stride), want, 'the host twin');
          const buf = await gpu!.upload(v, 'v-finite test v');
          try {
            const { pre, flags } = await vFinitePrePass(gpu!, buf, { kvHeads: HKV, keys: rows, headDim: D }, stride);
            gpu!.write(flags, 0, new Uint32Array(HKV * V_FINITE_GROUPS).fill(0xdeadbeef));
            const u = gpu!.uniform(pre.params);
            const group = gpu!.bind(pre.pipeline, [...pre.buffers, u]);
            await gpu!.run('v-finite test', (pass) => {
              pass.setPipeline(pre.pipeline);
              pass.setBindGroup(0, group);
              pass.dispatchWorkgroups(...pre.groups);
            });
            u.destroy();
            const words = new Uint32Array(await gpu!.read(flags, HKV * V_FINITE_GROUPS * 4));
            for (let h = 0; h < HKV; h++) {
              const mine = words.subarray(h * V_FINITE_GROUPS, (h + 1) * V_FINITE_GROUPS);
              assert.ok(
                mine.every((w) => w === 0 || w === 1),
                `head ${h}: every word written (0 or 1), got ${[...new Set(mine)].join(', ')}`,
              );
              assert.equal(
                mine.some((w) => w === 1),
                want[h],
                `head ${h} ${want[h] ? 'holds' : 'has no'} non-finite V`,
              );
            }
          } finally {
            gpu!.release(buf);
          }
        });
      }
});

test('V pre-pass refuses what it cannot read, typed', () => {
  assert.throws(() => vFiniteParams({ rows: 5, headDim: 12 }), UnsupportedError);
  assert.throws(() => vFiniteParams({ rows: 5, headDim: 64, rowsPerHead: 4 }), UnsupportedError);
  assert.deepEqual([...new Uint32Array(vFiniteParams({ rows: 97, headDim: 24, rowsPerHead: 134 }))], [291, 402, 0, 0]);
});
