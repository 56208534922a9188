// One DSA layer's trainable indexer in DeepSeek-V3.2's form (model/caches/dsa-indexer.ts reads it at inference):
// W_q [H_I * D_I, hidden], W_k [D_I, hidden], W_proj [H_I, hidden], the k LayerNorm's weight and bias [D_I],
// flat in one float64 vector so that AdamW, clipping and checkpoints see one array. The loader's tensor
// names (GGUF blk.N.indexer.*, HF model.layers.N.indexer.*) live here too, with the conversion to
// WeightTensors that the decoder takes.
import { ShapeError } from '../errors.js';
import { pairChannels } from '../model/caches/dsa-indexer.js';
import { hfIndexerNames } from '../model/load/hf-weights.js';
import { ropeInverseFrequencies } from '../model/positions/rope.js';
import type { ModelConfig, TrainedIndexerWeights, WeightTensor } from '../model/types.js';

export interface IndexerGeometry {
  hidden: number;
  /** H_I */
  heads: number;
  /** D_I */
  dim: number;
  /** RoPE on channels 0..ropeDim-1 of every index query head and of the index key (the model's head dim). */
  ropeDim: number;
  /** The channel pairs (a, b) that rotate together, and their inverse frequencies. */
  pairs: Array<[number, number]>;
  invFreq: Float64Array;
  /** w = W_proj h * weightScale: 1 / sqrt(H_I D_I), as the loader applies. */
  weightScale: number;
}

export function indexerGeometry(c: ModelConfig, heads: number, dim: number): IndexerGeometry {
  if (!Number.isInteger(heads) || heads < 1)
    throw new ShapeError(`indexer heads must be a positive integer, got ${heads}`);
  if (!Number.isInteger(dim) || dim < c.headDim || dim % 2 !== 0)
    throw new ShapeError(`indexer head dim must be even and at least the model's head dim ${c.headDim}, got ${dim}`);
  const half = c.headDim / 2;
  return {
    hidden: c.hiddenSize,
    heads,
    dim,
    ropeDim: c.headDim,
    pairs: Array.from({ length: half }, (_, i) => pairChannels(i, c.headDim, c.ropeLayout)),
    invFreq: ropeInverseFrequencies(c),
    weightScale: 1 / Math.sqrt(heads * dim),
  };
}

/** Offsets of each tensor inside the flat parameter vector. */
export function paramLayout(g: IndexerGeometry) {
  const wq = 0;
  const wk = wq + g.heads * g.dim * g.hidden;
  const proj = wk + g.dim * g.hidden;
  const gamma = proj + g.heads * g.hidden;
  const beta = gamma + g.dim;
  return { wq, wk, proj, gamma, beta, size: beta + g.dim };
}

/** Seeded normal draws (xorshift32 + Box-Muller): the initial weights and the data order. */
export function seededNormal(seed: number): { uniform: () => number; normal: () => number } {
  let s = seed >>> 0 || 0x9e3779b9;
  const uniform = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/** Fresh parameters: projections ~ N(0, 1/hidden) (unit-variance outputs for RMS-normalised h), LayerNorm 1 and 0. */
export function initIndexerParams(g: IndexerGeometry, seed: number): Float64Array {
  const l = paramLayout(g);
  const p = new Float64Array(l.size);
  const { normal } = seededNormal(seed);
  const sd = 1 / Math.sqrt(g.hidden);
  for (let i = 0; i < l.gamma; i++) p[i] = normal() * sd;
  p.fill(1, l.gamma, l.beta);
  return p;
}

/** The loader's names, per file kind, of one layer's indexer tensors (GGUF: model/load/gguf.ts; HF: hf-weights.ts). */
export function indexerTensorNames(kind: 'gguf' | 'hf', layer: number): Record<keyof TrainedIndexerWeights, string> {
  if (kind === 'hf') return hfIndexerNames(layer);
  const p = `blk.${layer}.indexer.`;
  return {
    wq: `${p}attn_q.weight`,
    wk: `${p}attn_k.weight`,
    proj: `${p}proj.weight`,
    kNormWeight: `${p}k_norm.weight`,
    kNormBias: `${p}k_norm.bias`,
  };
}

/** The f32 tensors of a parameter vector, in the loader's shapes ([out, in] row-major), named for `kind`. */
export function indexerTensors(
  g: IndexerGeometry,
  params: Float64Array,
  kind: 'gguf' | 'hf',
  layer: number,
): Required<TrainedIndexerWeights> {
  const l = paramLayout(g);
  const names = indexerTensorNames(kind, layer);
  const t = (name: string, shape: number[], from: number): WeightTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const f = Float32Array.from(params.subarray(from, from + n));
    return { name, shape, dtype: 'f32', bytes: new Uint8Array(f.buffer) };
  };
  return {
    wq: t(names.wq, [g.heads * g.dim, g.hidden], l.wq),
    wk: t(names.wk, [g.dim, g.hidden], l.wk),
    proj: t(names.proj, [g.heads, g.hidden], l.proj),
    kNormWeight: t(names.kNormWeight, [g.dim], l.gamma),
    kNormBias: t(names.kNormBias, [g.dim], l.beta),
  };
}
