// `longctx info`: which device the library would use, with its features and limits.
import { acquireDevice } from '../runtime/device.js';
import { backendOption, parse } from './args.js';

export const INFO_USAGE = `usage: longctx info [--backend cpu|webgpu|auto]
  Prints the device the library would use (JSON): backend, name, features and limits.`;

export async function infoCommand(argv: string[]): Promise<void> {
  const device = await acquireDevice(backendOption(parse(argv, { backend: { type: 'string' } })));
  const g = device.gpu;
  const info = g
    ? {
        backend: device.backend,
        device: device.name,
        features: g.features,
        maxBindingBytes: g.maxBindingBytes,
        maxWorkgroupStorageBytes: g.maxWorkgroupStorageBytes,
      }
    : { backend: device.backend, device: device.name };
  process.stdout.write(JSON.stringify(info, null, 2) + '\n');
  device.destroy();
}
