// Times the split-KV decoding kernels side by side on one device (the device machine's sweep): each
// version (attention/flash-decode.ts) and splitting (most splits, fewest keys per split) at cache lengths
// of the 1B-shaped model's attention (32 query heads, 8 KV heads, D 64, f16), 40 steps in one submission,
// microseconds per step and the bandwidth of reading the K and V rows once. Prints markdown and JSON.
//   node dist/scripts/decode-sweep.js [--keys 4096,32768,131072] [--heads 32 --kv-heads 8 --head-dim 64]
import { acquireGpu } from '../src/runtime/acquire-gpu.js';
import { createDecodeScratch, DECODE_VERSIONS, flashDecodeCalls } from '../src/attention/flash-decode.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const keysList = arg('keys', '4096,32768,131072').split(',').map(Number);
const [heads, kvHeads, headDim] = [
  Number(arg('heads', '32')),
  Number(arg('kv-heads', '8')),
  Number(arg('head-dim', '64')),
];
const steps = 40;
const splittings = [
  { maxSplits: 16, minKeys: 256 },
  { maxSplits: 32, minKeys: 256 },
  { maxSplits: 64, minKeys: 256 },
  { maxSplits: 128, minKeys: 128 },
  { maxSplits: 256, minKeys: 128 },
  { maxSplits: 256, minKeys: 64 },
];
const gpu = await acquireGpu();
if (!gpu) throw new Error('no WebGPU adapter');
const rows: Record<string, unknown>[] = [];
console.log(
  `| keys | version | max splits | min keys | splits | us/step | GB/s (K+V once) |\n| --- | --- | --- | --- | --- | --- | --- |`,
);
for (const keys of keysList) {
  const kv = new Uint16Array(kvHeads * keys * headDim).map((_, i) => 0x3000 + (i % 977));
  const q = new Uint16Array(heads * headDim).map((_, i) => 0x3400 + (i % 311));
  const bufs = {
    q: await gpu.upload(q, 'q'),
    k: await gpu.upload(kv, 'k'),
    v: await gpu.upload(kv, 'v'),
    o: await gpu.createBuffer(heads * headDim * 4, 'o'),
    lse: await gpu.createBuffer(heads * 4, 'lse'),
  };
  const scratch = await createDecodeScratch(gpu, heads, headDim);
  const shape = { heads, kvHeads, queries: 1, keys, headDim, causal: false, scale: 1 / Math.sqrt(headDim) };
  for (const version of DECODE_VERSIONS)
    for (const splitting of splittings) {
      const calls = await flashDecodeCalls(gpu, { ...bufs, shape, dtype: 'f16' }, scratch, keys, version, splitting);
      const u = gpu.uniform(calls.params);
      const groups = [calls.partial, calls.merge].map((c) => ({ c, bind: gpu.bind(c.pipeline, [...c.buffers, u]) }));
      const record = (n: number) =>
        gpu.run('decode sweep', (pass) => {
          for (let i = 0; i < n; i++)
            for (const { c, bind } of groups) {
              pass.setPipeline(c.pipeline);
              pass.setBindGroup(0, bind);
              pass.dispatchWorkgroups(...c.groups);
            }
        });
      await record(3);
      await gpu.idle();
      const t = performance.now();
      await record(steps);
      await gpu.idle();
      const us = ((performance.now() - t) * 1000) / steps;
      const gbs = (2 * kvHeads * keys * headDim * 2) / (us * 1e3);
      rows.push({ keys, version, ...splitting, splits: calls.splits, us, gbs });
      console.log(
        `| ${keys} | ${version} | ${splitting.maxSplits} | ${splitting.minKeys} | ${calls.splits} | ${us.toFixed(1)} | ${gbs.toFixed(0)} |`,
      );
      u.destroy();
    }
  Object.values(bufs).forEach((b) => gpu.release(b));
  gpu.release(scratch.o);
  gpu.release(scratch.lse);
}
console.log(JSON.stringify(rows));
gpu.destroy();
