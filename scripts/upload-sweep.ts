// Times large host-to-GPU uploads in each of runtime/gpu-upload.ts's modes on one device (the device machine's
// sweep for saved sessions): `--mib` MiB in 128 MiB arrays (a 1B model's f16 K or V cache of one layer at 128K
// tokens), each mode twice in turn, best of the two, checked by reading bytes back. Prints markdown, then
// `best: MODE` on its own line (scripts/h200-call-*.sh take it for LONGCTX_UPLOAD).
//   node dist/scripts/upload-sweep.js [--mib 4096]
import { acquireGpu } from '../src/runtime/acquire-gpu.js';
import { GpuUploader, UPLOAD_MODES, type UploadMode } from '../src/runtime/gpu-upload.js';

const i = process.argv.indexOf('--mib');
const mib = i >= 0 ? Number(process.argv[i + 1]) : 4096;
const ARRAY = Math.min(128, mib) * 2 ** 20;
const count = Math.max(1, Math.round((mib * 2 ** 20) / ARRAY));
const gpu = await acquireGpu();
if (!gpu) throw new Error('no WebGPU adapter');
const host = Array.from({ length: count }, (_, a) => {
  const x = new Uint16Array(ARRAY / 2);
  for (let j = 0; j < x.length; j += 1024) x[j] = (a * 7919 + j) & 0xffff;
  return x;
});
const buffers = await Promise.all(host.map((_, a) => gpu.createBuffer(ARRAY, `upload sweep ${a}`)));
const seconds: Record<string, number> = {};
for (const round of [0, 1])
  for (const mode of UPLOAD_MODES) {
    const up = new GpuUploader(gpu, mode);
    await gpu.idle();
    const t0 = performance.now();
    for (let a = 0; a < count; a++) await up.write(buffers[a], 0, host[a]);
    await up.settle();
    const s = (performance.now() - t0) / 1000;
    seconds[mode] = round ? Math.min(seconds[mode], s) : s;
    const last = new Uint16Array(await gpu.read(buffers[count - 1], 4096));
    if (last[1024] !== host[count - 1][1024]) throw new Error(`${mode}: the uploaded bytes differ`);
  }
const gib = (count * ARRAY) / 2 ** 30;
process.stdout.write(
  `uploads of ${gib.toFixed(2)} GiB in ${count} arrays on ${gpu.adapterName ?? 'the device'}\n\n| mode | seconds | GiB/s |\n| --- | ---: | ---: |\n` +
    UPLOAD_MODES.map((m) => `| ${m} | ${seconds[m].toFixed(3)} | ${(gib / seconds[m]).toFixed(2)} |`).join('\n') +
    '\n',
);
const best = UPLOAD_MODES.reduce((a: UploadMode, b) => (seconds[b] < seconds[a] ? b : a));
process.stdout.write(`best: ${best}\n`);
gpu.destroy();
