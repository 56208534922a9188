// The decoder for a device: WebGPU when the device has a GPU, else the CPU.
import type { Device } from '../../runtime/device.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import { CpuDecoder, type Decoder, type DecoderOptions } from './decoder-cpu.js';
import type { LoadedModel, ModelConfig } from '../types.js';
import { defaultPrefillChunk } from '../../attention/planner.js';

export async function createDecoder(
  device: Device,
  model: LoadedModel,
  schedule: LayerSchedule,
  opts: DecoderOptions,
): Promise<Decoder> {
  if (!device.gpu) return new CpuDecoder(model, schedule, opts);
  const { GpuDecoder } = await import('./decoder-gpu.js');
  return GpuDecoder.create(device.gpu, model, schedule, opts);
}

/** The prefill chunk a decoder on `device` takes when none is asked (the planner's defaultPrefillChunk). */
export function prefillChunkFor(device: Device, storage: 'f32' | 'f16', c: ModelConfig): number {
  return defaultPrefillChunk(device.gpu, storage, c.hiddenSize);
}
