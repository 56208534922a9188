// Which attention methods a training-free positional method can sit beside, and the keys it then sees: exact
// attention (flash, dense) sees the causal past; window and sinks bound it by their mask (a window longer than
// the trained context becomes servable when the positions inside it stay short); dsa beside remap picks remap's
// far keys with its indexer. The rest is refused here,
// once, for the CPU and the WebGPU layers alike.
import { SpecError, UnsupportedError } from '../../errors.js';
import type { MethodSpec } from '../../attention/spec.js';
import { maskForSpec } from '../../attention/sparse.js';
import type { MaskNode } from '../../spine/mask.js';
import { formatPositionSpec, type PositionMethod } from './position-method.js';

/** The attention method's own mask beside `m` (undefined: causal), or a typed error naming why not. */
export function positionsVisibleMask(method: MethodSpec, m: PositionMethod): MaskNode | undefined {
  const pos = `--positions ${formatPositionSpec(m)}`;
  switch (method.name) {
    case 'flash':
    case 'dense':
      return undefined;
    case 'window':
    case 'sinks':
      if (m.kind === 'remap')
        throw new SpecError(
          `${pos} keeps exact positions in its own window and attends selected far keys; a '${method.name}' mask ` +
            'would drop those far keys: use flash beside it',
        );
      return maskForSpec(method, true);
    case 'cca':
      throw new SpecError(
        `${pos} beside cca: CCA pools each group of keys into a core after RoPE, so a core has no one position ` +
          'to reassign; use cca with --rope scaling, or flash/window beside the positional method',
      );
    case 'dsa':
      // Beside remap the DSA indexer is remap's selector (model/caches/remap-indexer.ts), over the causal past.
      if (m.kind === 'remap') return undefined;
      throw new SpecError(
        `${pos} beside dsa: DSA's selection sits beside remapped positions only (--positions remap:window=W,topk=K, ` +
          'the indexer picking its far keys); use flash, window or sinks beside this positional method',
      );
    case 'star':
    case 'ring':
      throw new UnsupportedError(
        `${pos} beside ${method.name}: the hosts' shards hold keys rotated at their positions; positional methods ` +
          'across hosts are not built yet (use flash, window or sinks)',
      );
    default:
      throw new SpecError(`${pos} beside '${method.name}': no positional layer for this method`);
  }
}
