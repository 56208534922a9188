// Checks every flash/dense variant the GPU offers against the float64 reference (run on the device machine).
import {
  acquireDevice,
  randomNormal,
  referenceAttention,
  naiveHalfAttention,
  flashAttention,
} from '../dist/src/index.js';
import { maxAbsDiff } from '../dist/src/reference/attention.js';
import {
  and,
  causal as causalMask,
  or,
  sinkTokens,
  slidingWindow,
  documents,
  maskAllows,
} from '../dist/src/spine/mask.js';
const dev = await acquireDevice('webgpu');
console.log('device:', dev.name, JSON.stringify(dev.gpu.features), 'maxBinding', dev.gpu.maxBindingBytes);
let bad = 0;
const shapes = process.argv[2]
  ? JSON.parse(process.argv[2])
  : [
      [4, 1, 97, 97, 64, true],
      [2, 2, 1, 1023, 128, true],
      [4, 4, 1023, 1023, 128, true],
      [8, 2, 300, 700, 128, false],
      [2, 1, 130, 70, 64, true],
    ];
for (const [H, Hk, Nq, Nk, D, causal] of shapes) {
  const q = randomNormal([H, Nq, D], 11, 'f16'),
    k = randomNormal([Hk, Nk, D], 12, 'f16'),
    v = randomNormal([Hk, Nk, D], 13, 'f16');
  const ref = referenceAttention(q, k, v, { causal });
  const naive = naiveHalfAttention(q, k, v, { causal });
  const budget = maxAbsDiff(naive.o, ref.o);
  for (const variant of ['portable', 'subgroup-matrix']) {
    try {
      const st = await flashAttention(dev, q, k, v, { causal, variant });
      const err = maxAbsDiff(st.o, ref.o),
        lerr = maxAbsDiff(st.lse, ref.lse);
      const ok = err <= 2 * budget && lerr < 1e-2;
      if (!ok) bad++;
      console.log(
        ok ? 'ok ' : 'BAD',
        variant,
        [H, Hk, Nq, Nk, D, causal].join(','),
        'err',
        err.toExponential(2),
        'naive-f16',
        budget.toExponential(2),
        'lse',
        lerr.toExponential(2),
      );
    } catch (e) {
      bad++;
      console.log('FAIL', variant, e.message.slice(0, 2000));
    }
  }
}
// Block masks on both variants: window, sinks + window, documents, with rows that see nothing early.
const masks = [
  ['window 37', and(causalMask(), slidingWindow(37)), 4, 2, 1023, 1023, 128],
  ['window 100 right 20', slidingWindow(100, 20), 2, 1, 300, 700, 64],
  ['sinks 5 + window 40', and(causalMask(), or(sinkTokens(5), slidingWindow(40))), 4, 1, 97, 300, 64],
  [
    'documents',
    and(
      causalMask(),
      documents(Int32Array.from({ length: 333 }, (_, i) => (i < 40 ? 0 : i < 41 ? 1 : i < 200 ? 2 : 3))),
    ),
    2,
    2,
    333,
    333,
    128,
  ],
];
for (const [name, mask, H, Hk, Nq, Nk, D] of masks) {
  const q = randomNormal([H, Nq, D], 21, 'f16'),
    k = randomNormal([Hk, Nk, D], 22, 'f16'),
    v = randomNormal([Hk, Nk, D], 23, 'f16');
  const filter = (i, j) => maskAllows(mask, Nk - Nq + i, j);
  const ref = referenceAttention(q, k, v, { causal: false }, filter);
  const budget = maxAbsDiff(naiveHalfAttention(q, k, v, { causal: false }, filter).o, ref.o);
  for (const variant of ['portable', 'subgroup-matrix']) {
    try {
      const st = await flashAttention(dev, q, k, v, { causal: false, variant, mask });
      const err = maxAbsDiff(st.o, ref.o),
        lerr = maxAbsDiff(st.lse, ref.lse);
      const ok = err <= 2 * budget && lerr < 1e-2;
      if (!ok) bad++;
      console.log(
        ok ? 'ok ' : 'BAD',
        variant,
        name,
        [H, Hk, Nq, Nk, D].join(','),
        'err',
        err.toExponential(2),
        'naive-f16',
        budget.toExponential(2),
        'lse',
        lerr.toExponential(2),
      );
    } catch (e) {
      bad++;
      console.log('FAIL', variant, name, e.message.slice(0, 2000));
    }
  }
}
console.log(bad ? `${bad} bad` : 'all ok');
process.exit(bad ? 1 : 0);
