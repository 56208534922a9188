// Runs flashSubgroupMatrixWgsl(D, subgroups) directly (any subgroup count, optional text patches) and
// checks o and lse against the float64 reference with gpu-check's rule.
// Args: JSON list of [H, Hkv, Nq, Nk, D, causal] (default: gpu-check's set and 1x2).
import { acquireDevice, randomNormal, referenceAttention, naiveHalfAttention } from '../dist/src/index.js';
import { maxAbsDiff } from '../dist/src/reference/attention.js';
import { flashSubgroupMatrixWgsl } from '../dist/src/kernels/flash-sgmat-wgsl.js';
import { attentionParams } from '../dist/src/kernels/wgsl-common.js';
const dev = await acquireDevice('webgpu');
const gpu = dev.gpu;
const shapes = process.argv[2]
  ? JSON.parse(process.argv[2])
  : [
      [1, 1, 1, 2, 64, false],
      [4, 1, 97, 97, 64, true],
      [2, 2, 1, 1023, 128, true],
      [4, 4, 1023, 1023, 128, true],
      [8, 2, 300, 700, 128, false],
      [2, 1, 130, 70, 64, true],
    ];
// The old layout: a lone u32 `need`, declared first (ahead of the tiles) or last.
const u32need = (first) => (c) => {
  c = c.replace('var<workgroup> need: array<u32, 4>;', '').replaceAll('need[0]', 'need');
  return first
    ? c.replace('var<workgroup> st:', 'var<workgroup> need: u32;\nvar<workgroup> st:')
    : c.replace('fn key_limit', 'var<workgroup> need: u32;\nfn key_limit');
};
const variants = [
  { name: 'sub1', sub: 1 },
  { name: 'sub4', sub: 4 },
  { name: 'sub1-u32need-first', sub: 1, patch: u32need(true) },
  { name: 'sub4-u32need-first', sub: 4, patch: u32need(true) },
  { name: 'sub1-u32need-last', sub: 1, patch: u32need(false) },
];
let bad = 0;
for (const [H, Hk, Nq, Nk, D, causal] of shapes) {
  const q = randomNormal([H, Nq, D], 11, 'f16'),
    k = randomNormal([Hk, Nk, D], 12, 'f16'),
    v = randomNormal([Hk, Nk, D], 13, 'f16');
  const ref = referenceAttention(q, k, v, { causal });
  const budget = maxAbsDiff(naiveHalfAttention(q, k, v, { causal }).o, ref.o);
  const qb = await gpu.upload(q.data, 'q'),
    kb = await gpu.upload(k.data, 'k'),
    vb = await gpu.upload(v.data, 'v');
  for (const vr of variants) {
    try {
      let code = flashSubgroupMatrixWgsl(D, undefined, vr.sub);
      if (vr.patch) code = vr.patch(code);
      const pipe = await gpu.pipeline(`chk-${vr.name}-${D}`, () => code);
      const ob = await gpu.upload(new Float32Array(H * Nq * D).fill(NaN), 'o'),
        lb = await gpu.upload(new Float32Array(H * Nq).fill(NaN), 'lse');
      const params = gpu.uniform(
        attentionParams({ queries: Nq, keys: Nk, group: H / Hk, causal, scale: 1 / Math.sqrt(D) }),
      );
      await gpu.run('chk', (p) => {
        p.setPipeline(pipe);
        p.setBindGroup(0, gpu.bind(pipe, [qb, kb, vb, ob, lb, params]));
        p.dispatchWorkgroups(Math.ceil(Nq / (16 * vr.sub)), H);
      });
      const o = new Float32Array(await gpu.read(ob, H * Nq * D * 4)),
        lse = new Float32Array(await gpu.read(lb, H * Nq * 4));
      const err = maxAbsDiff(o, ref.o),
        lerr = maxAbsDiff(lse, ref.lse);
      const ok = err <= 2 * budget && lerr < 1e-2;
      if (!ok) bad++;
      console.log(
        ok ? 'ok ' : 'BAD',
        vr.name,
        [H, Hk, Nq, Nk, D, causal].join(','),
        'err',
        err.toExponential(2),
        'naive-f16',
        budget.toExponential(2),
        'lse',
        lerr.toExponential(2),
      );
      ob.destroy();
      lb.destroy();
      params.destroy();
    } catch (e) {
      bad++;
      console.log('FAIL', vr.name, e.message.slice(0, 1500));
    }
  }
}
console.log(bad ? `${bad} bad` : 'all ok');
