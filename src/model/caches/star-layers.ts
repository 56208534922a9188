// Star and Ring layers in the model runner run in one process (attention/layers/kv-method.ts: Star's block
// mask fixed by the prompt, Ring as exact flash); this refuses what they cannot do there. Across host
// processes a model runs through src/cluster/star-model*.ts (`longctx generate --hosts H`).
import { UnsupportedError } from '../../errors.js';
import type { MethodSpec } from '../../attention/spec.js';
import { starParams } from '../../attention/star.js';

/** Refuses what the runner cannot do for these methods: layers spread over hosts. */
export function checkStarRingLayer(method: MethodSpec): void {
  if (method.name !== 'star' && method.name !== 'ring') return;
  const hosts = Number(method.params.hosts ?? 1);
  if (hosts > 1) {
    throw new UnsupportedError(
      `${method.name}:hosts=${hosts} in the model runner: layers run in one process (the same visible sets as ` +
        `across hosts); drop hosts= and pass \`generate --hosts ${hosts}\` to spread the model over host processes ` +
        '(or `longctx attend --hosts` for one attention call)',
    );
  }
  if (method.name === 'star') starParams(method); // spec errors before any weight is touched
}
