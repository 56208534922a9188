// Checks before `generate` allocates: the KV cache and activations of a run against the device (host
// memory on the CPU, the largest buffer on WebGPU), and the run's length against what the model can serve.
import { InputError, OutOfMemoryError } from '../../errors.js';
import { formatBytes } from '../../io/limits.js';
import { hostMemoryBudget } from '../../io/host-memory.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import type { Device } from '../../runtime/device.js';
import { planModel } from '../plan.js';
import type { ModelConfig } from '../types.js';
import { canServe } from './can-serve.js';
import type { PositionMethod } from '../positions/position-method.js';

export interface RunShape {
  promptTokens: number;
  newTokens: number;
  /** The --attention text (plan parses it as generate does). */
  attention: string;
  schedule: LayerSchedule;
  storage: 'f32' | 'f16';
  chunk: number;
  allowOverflow?: boolean;
  /** --positions: a positional method serves positions past the trained context too. */
  positions?: PositionMethod;
}

/** An OutOfMemoryError before anything is allocated when the run cannot fit the device. */
export function checkRunFits(device: Device, config: ModelConfig, r: RunShape): void {
  const tokens = r.promptTokens + r.newTokens;
  const dtype = device.gpu ? r.storage : 'f32';
  const plan = planModel(config, { context: tokens, attention: r.attention, dtype, chunk: Math.min(r.chunk, tokens) });
  const need = plan.kvCacheBytes + plan.activationBytes;
  if (!device.gpu) {
    const budget = hostMemoryBudget();
    if (need > budget)
      throw new OutOfMemoryError(
        `${tokens} tokens need ${formatBytes(need)} for the KV cache and activations, more than the ` +
          `${formatBytes(budget)} of host memory available (lower --max-tokens, use a windowed --attention, or set LONGCTX_HOST_MEMORY_BYTES)`,
        need,
        budget,
      );
    return;
  }
  // One layer's keys (or values) live in one buffer: it must fit the adapter's largest.
  const maxBuffer = device.gpu.device.limits.maxBufferSize;
  const perLayer = Math.max(...plan.groups.map((g) => g.kvBytesPerLayer / 2));
  if (perLayer > maxBuffer)
    throw new OutOfMemoryError(
      `${tokens} tokens need ${formatBytes(perLayer)} of keys per layer, more than this adapter's largest ` +
        `buffer (${formatBytes(maxBuffer)}); lower --max-tokens or use --storage f16 or a windowed --attention`,
      perLayer,
      maxBuffer,
    );
}

/** An InputError when the run is longer than the model serves, naming the numbers and what would serve it. */
export function checkRunServed(
  config: ModelConfig,
  r: Pick<RunShape, 'schedule' | 'newTokens' | 'positions' | 'promptTokens' | 'allowOverflow'>,
  source: string,
): void {
  const v = canServe(config, { schedule: r.schedule, newTokens: r.newTokens, positions: r.positions }, r.promptTokens);
  if (v.ok || r.allowOverflow) return;
  throw new InputError(
    `a prompt of ${r.promptTokens} tokens plus ${r.newTokens} to generate reaches position ${v.positions}, beyond ` +
      `the ${v.trainedContext} positions ${source} was trained ` +
      `at${v.ropeContext > v.trainedContext ? ` (its RoPE scaling reaches ${v.ropeContext})` : ''}; ` +
      `use ${v.suggestions.join(' or ')}, or --allow-overflow to run anyway`,
  );
}
