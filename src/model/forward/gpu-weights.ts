// The decoder's weights on the GPU: matrices uploaded once in the storage dtype (decoded to f32 first),
// except quantised matrices, which stay quantised for the matmul kernels to dequantise as they read them:
// Q8_0 as tiles (weights/q8-tiles.ts: 1.06 bytes a weight), Q4_0 / Q4_K / Q5_K / Q6_K as planes
// (weights/quant-gpu.ts: 0.59-0.83 bytes a weight), both exact; norm weights and biases (vectors) in f32. The embedding table stays in
// the storage dtype (the embedding lookup reads it; tied, it is also the output head).
import { float32ToHalf } from '../../f16.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import { q8TilesFromBlocks } from '../../weights/q8-tiles.js';
import { isGpuQuant, quantTilesFromBlocks } from '../../weights/quant-gpu.js';
import type { WeightStorage } from '../../kernels/matmul-wgsl.js';
import { concatRows } from '../../weights/concat-rows.js';
import type { LayerWeights, LoadedModel, WeightTensor } from '../types.js';
import type { LayerWeightsOf, QkvWeightsOf } from './ops.js';

export type GpuLayerWeights = LayerWeightsOf<GPUBuffer, GPUBuffer>;

export interface GpuWeights {
  layers: GpuLayerWeights[];
  embedding: GPUBuffer;
  output: GPUBuffer;
  outputNorm: GPUBuffer;
  /** The storage of each matrix that is not in the storage dtype (Q8_0 tiles, quant planes). */
  matrixStorage: Map<GPUBuffer, WeightStorage>;
  /** Bytes of every weight buffer (the tied output counted once). */
  bytes: number;
}

/** Uploads every weight; each buffer is pushed to `owned` as soon as it exists (the caller frees on failure). */
export async function uploadWeights(
  gpu: GpuContext,
  model: LoadedModel,
  storage: 'f32' | 'f16',
  owned: GPUBuffer[],
): Promise<GpuWeights> {
  const matrixStorage = new Map<GPUBuffer, WeightStorage>();
  let bytes = 0;
  const up = async (w: WeightTensor, tiles = true) => {
    const dtype = w.dtype;
    if (tiles && (dtype === 'q8_0' || isGpuQuant(dtype)) && w.shape.length === 2) {
      const [rows, cols] = w.shape;
      const words =
        dtype === 'q8_0'
          ? q8TilesFromBlocks(w.bytes, rows, cols, w.name)
          : quantTilesFromBlocks(dtype, w.bytes, rows, cols, w.name);
      const b = await gpu.upload(words, w.name);
      owned.push(b);
      matrixStorage.set(b, dtype);
      bytes += words.byteLength;
      return b;
    }
    const values = new WeightMatrix(w).toFloat32();
    const data = storage === 'f16' && w.shape.length === 2 ? float32ToHalf(values) : values;
    const b = await gpu.upload(data, w.name);
    owned.push(b);
    bytes += data.byteLength;
    return b;
  };
  // q, k and v stacked into one matrix (one product, and for a decoded token one GEMV instead of three) where they
  // share an encoding and their biases are all there or all absent; else three.
  const qkv = async (l: LayerWeights): Promise<QkvWeightsOf<GPUBuffer, GPUBuffer>> => {
    const name = l.wq.name.replace(/q(\.weight)?$/, 'qkv$1');
    const fused = concatRows(name, [l.wq, l.wk, l.wv]);
    const biases = [l.bq, l.bk, l.bv].filter((b) => b !== undefined);
    const bias = biases.length === 3 ? concatRows(`${name} bias`, biases) : undefined;
    if (fused && (biases.length === 0 || bias)) return { fused: await up(fused), bias: bias && (await up(bias)) };
    const [q, k, v] = [await up(l.wq), await up(l.wk), await up(l.wv)];
    return { q, k, v, bq: l.bq && (await up(l.bq)), bk: l.bk && (await up(l.bk)), bv: l.bv && (await up(l.bv)) };
  };
  const layers: GpuLayerWeights[] = [];
  for (const l of model.weights.layers)
    layers.push({
      attnNorm: await up(l.attnNorm),
      ffnNorm: await up(l.ffnNorm),
      qkv: await qkv(l),
      wo: await up(l.wo),
      wGate: await up(l.wGate),
      wUp: await up(l.wUp),
      wDown: await up(l.wDown),
    });
  // A Q4_0/Q4_K/Q5_K/Q6_K embedding stays quantised (the lookup dequantises its rows: kernels/quant-wgsl.ts); the
  // others go up in the storage dtype.
  const table = model.weights.tokenEmbedding;
  const embedding = await up(table, isGpuQuant(table.dtype));
  const output = model.weights.output ? await up(model.weights.output) : embedding;
  const outputNorm = await up(model.weights.outputNorm);
  return { layers, embedding, output, outputNorm, matrixStorage, bytes };
}
