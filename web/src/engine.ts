// The page's engine: the device (navigator.gpu through the library's acquireDevice, else the CPU), a model
// from the embedded stories260K or a File the user picked, and sessions whose layers each run their own
// attention method, with the RoPE scaling and positional method the form chose.
import {
  acquireDevice,
  type Device,
  loadModel,
  type Model,
  modelFromWeights,
  Session,
  UnsupportedError,
} from '../../src/index.js';
import { blobSource } from '../../src/model/load/byte-source.js';
import { readHfSources } from '../../src/model/load/hf-source.js';
import { parseMethodSpec } from '../../src/attention/spec.js';
import type { LayerSchedule } from '../../src/attention/sparse.js';
import { createDecoder } from '../../src/model/forward/create-decoder.js';
import { parsePositionSpec } from '../../src/model/positions/position-method.js';
import { parseRopeSpec } from '../../src/model/positions/rope-scaling.js';
import { planModel } from '../../src/model/plan.js';
import type { LoadProgress } from '../../src/api/source.js';

/** The memory sessions are planned against: the browser's own estimate (navigator.deviceMemory, GiB), else 4 GiB. */
export function browserMemoryBytes(): number {
  const gib = (navigator as { deviceMemory?: number }).deviceMemory;
  return (typeof gib === 'number' && gib > 0 ? gib : 4) * 2 ** 30;
}

export async function pageDevice(want: 'auto' | 'cpu'): Promise<{ device: Device; note: string }> {
  if (want === 'cpu') return { device: await acquireDevice('cpu'), note: 'CPU backend (chosen)' };
  const gpu = (navigator as { gpu?: unknown }).gpu;
  if (!gpu)
    return { device: await acquireDevice('cpu'), note: 'no WebGPU in this browser: running on the CPU backend' };
  try {
    const device = await acquireDevice('auto');
    if (device.backend === 'cpu')
      return { device, note: 'WebGPU is present but gave no adapter: running on the CPU backend' };
    return { device, note: `WebGPU: ${device.name}` };
  } catch (e) {
    return { device: await acquireDevice('cpu'), note: `WebGPU failed (${(e as Error).message}): CPU backend` };
  }
}

export async function loadPageModel(
  source: Blob | ArrayBuffer,
  device: Device,
  onProgress: (p: LoadProgress) => void,
  signal?: AbortSignal,
): Promise<Model> {
  return loadModel(source, { device, memoryBytes: browserMemoryBytes(), onProgress, signal });
}

/** The files of a Hugging Face directory (picked together, or as a folder), each read in pieces. */
export async function loadHfFiles(
  files: readonly File[],
  device: Device,
  onProgress: (p: LoadProgress) => void,
  signal?: AbortSignal,
): Promise<Model> {
  const sources = files.map((f) => blobSource(f, (f as { webkitRelativePath?: string }).webkitRelativePath || f.name));
  const loaded = await readHfSources(sources, { signal, onProgress: (p) => onProgress({ phase: 'read', ...p }) });
  return modelFromWeights(loaded, { device, memoryBytes: browserMemoryBytes() });
}

export interface SessionChoice {
  /** One method spec per layer (the spec grammar of src/attention/spec.ts). */
  layers: string[];
  rope: string;
  positions: string;
  contextSize: number;
  chunk: number;
}

/** What the chosen methods' KV caches hold at the full context, layer by layer (model/plan.ts's sums). */
export function plannedKvBytes(model: Model, c: SessionChoice): number {
  const dtype = model.device.backend === 'webgpu' ? model.storage : 'f32';
  let bytes = 0;
  for (const spec of c.layers) {
    const p = planModel(model.config, { context: c.contextSize, attention: spec, dtype, chunk: c.chunk });
    bytes += p.kvCacheBytes / model.config.layers;
  }
  return bytes;
}

export async function createPageSession(model: Model, c: SessionChoice): Promise<Session> {
  const specs = c.layers.map((s) => parseMethodSpec(s));
  if (specs.length !== model.config.layers)
    throw new UnsupportedError(`${specs.length} layer methods given for a model of ${model.config.layers} layers`);
  const schedule: LayerSchedule = {
    description: c.layers.join(' | '),
    methodFor: (layer) => specs[layer],
  };
  const rope = c.rope === 'model' ? undefined : parseRopeSpec(c.rope);
  const positions = parsePositionSpec(c.positions);
  const loaded = model.modelFiles.model;
  const withRope = rope ? { ...loaded, config: { ...loaded.config, rope } } : loaded;
  const decoder = await createDecoder(model.device, withRope, schedule, {
    maxTokens: c.contextSize,
    chunk: c.chunk,
    storage: model.storage,
    positions,
  });
  const cfg = withRope.config;
  const attention = new Set(c.layers).size === 1 ? c.layers[0] : schedule.description;
  return new Session(
    decoder,
    model.tokenizer,
    {
      contextSize: c.contextSize,
      attention,
      chunk: c.chunk,
      wholePrompt: specs.some((s) => s.name === 'star'),
      positions: { rope: cfg.rope, ropeTheta: cfg.ropeTheta, ropeLayout: cfg.ropeLayout },
    },
    () => model.chatTemplate(),
    {},
    () => undefined,
    model,
  );
}
