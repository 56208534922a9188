// stories260K with a random trained DSA indexer in every layer (model-dsa.test.ts, api-session-methods.test.ts).
import { randomNormal } from '../src/tensor.js';
import { parseGguf } from '../src/model/load/gguf-reader.js';
import { buildGguf, encodeTensor, metaValue, type BuilderTensor, type MetaValue } from './gguf-builder.js';
import { fixtureBytes } from './model-support.js';

/** stories260K with a random trained indexer (H_I 2, D_I 16, k_norm) in every layer, as GGUF blk.N.indexer.*. */
export function withTrainedIndexer(): Buffer {
  const buf = fixtureBytes();
  const g = parseGguf(buf, 'stories260K');
  const meta = [...g.metadata].map(([k, v]): [string, MetaValue] => [k, metaValue(v)]);
  const tensors: BuilderTensor[] = g.tensors.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    data: new Uint8Array(buf.subarray(t.offset, t.offset + t.byteLength)),
  }));
  const H = 64;
  let seed = 100;
  const add = (name: string, logical: number[], std: number, mean = 0) => {
    const values = randomNormal([logical.reduce((x, y) => x * y)], seed++).data as Float32Array;
    for (let i = 0; i < values.length; i++) values[i] = mean + std * values[i];
    tensors.push({ name, dims: [...logical].reverse(), type: 0, data: encodeTensor(values, 0) });
  };
  for (let l = 0; l < 5; l++) {
    add(`blk.${l}.indexer.attn_q.weight`, [2 * 16, H], 0.3);
    add(`blk.${l}.indexer.attn_k.weight`, [16, H], 0.3);
    add(`blk.${l}.indexer.proj.weight`, [2, H], 0.3);
    add(`blk.${l}.indexer.k_norm.weight`, [16], 0.1, 1);
    add(`blk.${l}.indexer.k_norm.bias`, [16], 0.1);
  }
  return buildGguf(meta, tensors);
}
