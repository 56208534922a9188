// Does Dawn return the memory of destroyed buffers? Allocate 1 GiB buffers until refused, release them,
// then try again: after an empty submit + idle; after destroying the device and acquiring a new one.
import { acquireDevice } from '../dist/src/index.js';
let dev = await acquireDevice('webgpu');
const round = async (what) => {
  const gpu = dev.gpu;
  const bufs = [];
  try {
    for (let i = 0; i < 100; i++) bufs.push(await gpu.tryCreateBuffer(2 ** 30, 'probe', 0));
  } catch (_e) {
    /* refused */
  }
  console.log(`${what}: ${bufs.length} GiB allocated`);
  for (const b of bufs) gpu.release(b);
};
await round('first');
dev.gpu.device.queue.submit([dev.gpu.device.createCommandEncoder().finish()]);
await dev.gpu.idle();
await new Promise((r) => setTimeout(r, 100));
await round('after an empty submit + idle');
dev.gpu.device.queue.submit([dev.gpu.device.createCommandEncoder().finish()]);
await dev.gpu.idle();
await new Promise((r) => setTimeout(r, 100));
await round('after a second empty submit + idle');
dev.destroy();
dev = await acquireDevice('webgpu');
await round('on a new device');
dev.destroy();
