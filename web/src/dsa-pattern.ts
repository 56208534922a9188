// DSA's selected keys for the actual prompt: the prompt runs once through the CPU decoder (exact attention),
// which hands the chosen layer's post-RoPE q and k (and its attention input h, for a trained indexer) to
// `observe`; the library's own DsaLayer (model/caches/dsa-layer.ts) then indexes those keys and selects for
// every query, as the model's DSA layer would: sinks, local window, and the indexer's top-k between them.
import { cpuDevice, type Model } from '../../src/index.js';
import { uniformSchedule } from '../../src/attention/sparse.js';
import { CpuDecoder } from '../../src/model/forward/decoder-cpu.js';
import { DsaLayer } from '../../src/model/caches/dsa-layer.js';

export interface LayerActivations {
  n: number;
  layer: number;
  q: Float32Array;
  k: Float32Array;
  h?: Float32Array;
}

/** One exact pass over `ids` on the CPU, keeping layer `layer`'s q [Hq, n, D], k [Hkv, n, D] and h [n, hidden]. */
export async function layerActivations(model: Model, ids: number[], layer: number): Promise<LayerActivations> {
  let kept: LayerActivations | undefined;
  const decoder = new CpuDecoder(model.modelFiles.model, uniformSchedule('flash'), {
    maxTokens: ids.length,
    chunk: ids.length,
    observe: (l, position, T, q, k, h) => {
      if (l === layer && position === 0 && T === ids.length)
        kept = { n: T, layer, q: q.slice(), k: k.slice(), h: h?.slice() };
    },
  });
  try {
    await decoder.forward(ids);
  } finally {
    decoder.destroy();
  }
  if (!kept) throw new Error(`layer ${layer} was not observed`);
  return kept;
}

/** cells [n x n]: 1 where query q attends key k under dsa:topk,sinks,local,pairs. */
export async function dsaCells(
  model: Model,
  a: LayerActivations,
  p: { topk: number; sinks: number; local: number; pairs: number },
): Promise<Uint8Array> {
  const weights = model.modelFiles.model.weights.layers[a.layer];
  const dsa = new DsaLayer(weights, model.config, { ...p, local: Math.max(1, p.local), precision: 'int8' }, a.n);
  dsa.append(a.k, a.n, a.h);
  const keys = await dsa.select(cpuDevice, a.q, a.n, a.h);
  const cells = new Uint8Array(a.n * a.n);
  for (let t = 0; t < a.n; t++)
    for (let i = 0; i < keys.count(t); i++) {
      const s = keys.indices[t * keys.width + i];
      if (s >= 0) cells[t * a.n + s] = 1;
    }
  return cells;
}
