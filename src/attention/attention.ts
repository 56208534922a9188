// The one face of all methods: attention(device, q, k, v, spec) -> attention state (output + LSE).
import { UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import { denseAttention } from './dense.js';
import { flashAttention } from './flash.js';
import type { AttentionOptions } from '../spine/problem.js';
import { intParam, parseMethodSpec, variantParam, type MethodSpec } from './spec.js';
import { maskForSpec, scheduleFromSpec } from './sparse.js';
import type { AttentionState } from '../spine/state.js';
import { starAttention } from './star.js';
import { ringAttention } from './ring.js';
import { ccaAttention, ccaParamsFromSpec } from './cca.js';
import { dsaAttention, dsaOptionsFromSpec, type IndexerInputs } from './dsa.js';

export async function attention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  method: string | MethodSpec,
  opts: AttentionOptions & { index?: IndexerInputs } = {},
): Promise<AttentionState> {
  const spec = typeof method === 'string' ? parseMethodSpec(method) : method;
  switch (spec.name) {
    case 'dense':
      return denseAttention(device, q, k, v, opts);
    case 'flash':
    case 'window':
    case 'sinks':
      return flashAttention(device, q, k, v, {
        ...opts,
        variant: variantParam(spec),
        mask: maskForSpec(spec, opts.causal ?? true),
      });
    case 'star':
      return starAttention(device, q, k, v, spec, opts);
    case 'ring':
      return ringAttention(device, q, k, v, spec, opts);
    case 'cca':
      return ccaAttention(device, q, k, v, { ...opts, ...ccaParamsFromSpec(spec) });
    case 'dsa':
      return dsaAttention(device, q, k, v, { ...opts, ...dsaOptionsFromSpec(spec) });
    case 'hybrid':
      return attention(device, q, k, v, scheduleFromSpec(spec).methodFor(intParam(spec, 'layer', 0)), opts);
    default:
      throw new UnsupportedError(`method '${spec.name}' is parsed but not wired into attention()`);
  }
}
