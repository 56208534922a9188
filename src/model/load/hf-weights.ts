// Hugging Face tensor names (Llama, Qwen2, Mistral) -> ModelWeights, with every shape checked against the
// config. nn.Linear stores [out, in], the row-major layout ModelWeights asks for, so bytes pass unchanged.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, OutOfMemoryError, UnsupportedError } from '../../errors.js';
import { formatBytes } from '../../io/limits.js';
import { hostMemoryBudget } from '../../io/host-memory.js';
import { SafetensorsStore } from './safetensors.js';
import type { LayerWeights, ModelConfig, ModelWeights, TrainedIndexerWeights, WeightTensor } from '../types.js';

interface Wanted {
  name: string;
  shape: number[];
  optional?: boolean;
}

function layerNames(config: ModelConfig, i: number): Record<Exclude<keyof LayerWeights, 'indexer'>, Wanted> {
  const { hiddenSize: h, heads, kvHeads, headDim: d, intermediateSize: ff } = config;
  const p = `model.layers.${i}.`;
  const attn = `${p}self_attn.`;
  return {
    attnNorm: { name: `${p}input_layernorm.weight`, shape: [h] },
    wq: { name: `${attn}q_proj.weight`, shape: [heads * d, h] },
    wk: { name: `${attn}k_proj.weight`, shape: [kvHeads * d, h] },
    wv: { name: `${attn}v_proj.weight`, shape: [kvHeads * d, h] },
    wo: { name: `${attn}o_proj.weight`, shape: [h, heads * d] },
    bq: { name: `${attn}q_proj.bias`, shape: [heads * d], optional: true },
    bk: { name: `${attn}k_proj.bias`, shape: [kvHeads * d], optional: true },
    bv: { name: `${attn}v_proj.bias`, shape: [kvHeads * d], optional: true },
    ffnNorm: { name: `${p}post_attention_layernorm.weight`, shape: [h] },
    wGate: { name: `${p}mlp.gate_proj.weight`, shape: [ff, h] },
    wUp: { name: `${p}mlp.up_proj.weight`, shape: [ff, h] },
    wDown: { name: `${p}mlp.down_proj.weight`, shape: [h, ff] },
  };
}

/** What hfWeights reads tensors from: a directory's files (SafetensorsStore) or tensors already read (the browser). */
export type TensorStore = Pick<SafetensorsStore, 'dir' | 'has' | 'entry' | 'read'>;

/** The trained indexers' store when they are not in `store`: indexer.safetensors beside the weights (Node). */
function indexerFile(store: TensorStore): TensorStore {
  const extra = join(store.dir, INDEXER_FILE);
  return store.has(hfIndexerNames(0).wk) || !existsSync(extra) ? store : SafetensorsStore.openFile(extra);
}

export function hfWeights(
  store: TensorStore,
  config: ModelConfig,
  indexerStore: (store: TensorStore) => TensorStore = indexerFile,
): ModelWeights {
  const top: Wanted[] = [
    { name: 'model.embed_tokens.weight', shape: [config.vocabSize, config.hiddenSize] },
    { name: 'model.norm.weight', shape: [config.hiddenSize] },
  ];
  if (!config.tiedEmbeddings) top.push({ name: 'lm_head.weight', shape: [config.vocabSize, config.hiddenSize] });
  const layers = Array.from({ length: config.layers }, (_, i) => layerNames(config, i));
  // Biases are required when the config has them (Qwen2) and ignored otherwise, as transformers does.
  const wanted = [...top, ...layers.flatMap((l) => Object.values(l))].filter(
    (w) => !w.optional || config.attentionBias,
  );
  if (config.attentionBias && store.has('model.layers.0.self_attn.o_proj.bias')) {
    throw new UnsupportedError(
      `${store.dir}: an output-projection bias (o_proj.bias, Llama with attention_bias) is not supported`,
    );
  }

  // Check presence and shapes from the headers before reading any bytes.
  for (const w of wanted) {
    const entry = store.entry(w.name);
    if (!entry)
      throw new InputError(
        `${store.dir}: missing tensor '${w.name}'${w.name === 'lm_head.weight' ? ' (config says the embeddings are not tied)' : ''}`,
      );
    if (entry.shape.join() !== w.shape.join())
      throw new InputError(
        `${entry.file}: tensor '${w.name}' has shape [${entry.shape.join(', ')}], the config implies [${w.shape.join(', ')}]`,
      );
  }
  const bytes = wanted.reduce((s, w) => s + (store.entry(w.name)!.end - store.entry(w.name)!.begin), 0);
  const budget = hostMemoryBudget();
  if (bytes > budget)
    throw new OutOfMemoryError(
      `${store.dir}: the weights are ${formatBytes(bytes)}, more than the ${formatBytes(budget)} of ` +
        `host memory available (set LONGCTX_HOST_MEMORY_BYTES to override)`,
      bytes,
      budget,
    );
  const tensors = store.read(wanted.map((w) => w.name));
  // A trained DSA indexer (`longctx train-indexer`) comes in an added indexer.safetensors: a directory without an
  // index already holds it in `store`; with model.safetensors.index.json it is opened on its own.
  const indexers = indexerStore(store);
  const get = (w: Wanted): WeightTensor => tensors.get(w.name)!;
  const maybe = (w: Wanted): WeightTensor | undefined => tensors.get(w.name);
  return {
    tokenEmbedding: get(top[0]),
    outputNorm: get(top[1]),
    ...(config.tiedEmbeddings ? {} : { output: get(top[2]) }),
    layers: layers.map((l, i) => {
      const out: LayerWeights = {
        attnNorm: get(l.attnNorm),
        wq: get(l.wq),
        wk: get(l.wk),
        wv: get(l.wv),
        wo: get(l.wo),
        ffnNorm: get(l.ffnNorm),
        wGate: get(l.wGate),
        wUp: get(l.wUp),
        wDown: get(l.wDown),
      };
      const [bq, bk, bv] = [maybe(l.bq), maybe(l.bk), maybe(l.bv)];
      if (bq) out.bq = bq;
      if (bk) out.bk = bk;
      if (bv) out.bv = bv;
      const indexer = hfIndexer(indexers, config, i);
      if (indexer) out.indexer = indexer;
      return out;
    }),
  };
}

/** The file beside a Hugging Face model's weights that holds its trained DSA indexers. */
export const INDEXER_FILE = 'indexer.safetensors';

/** Names of layer i's trained DSA indexer tensors in a Hugging Face directory (DeepSeek-V3.2's module names). */
export function hfIndexerNames(i: number): Record<keyof TrainedIndexerWeights, string> {
  const p = `model.layers.${i}.indexer.`;
  return {
    wq: `${p}wq.weight`,
    wk: `${p}wk.weight`,
    proj: `${p}weights_proj.weight`,
    kNormWeight: `${p}k_norm.weight`,
    kNormBias: `${p}k_norm.bias`,
  };
}

/** Layer i's trained indexer when the store has one: all three projections, shapes agreeing with each other. */
function hfIndexer(store: TensorStore, config: ModelConfig, i: number): TrainedIndexerWeights | undefined {
  const n = hfIndexerNames(i);
  if (!Object.values(n).some((name) => store.has(name))) return undefined;
  for (const name of [n.wq, n.wk, n.proj])
    if (!store.has(name))
      throw new InputError(`${store.dir}: tensor '${name}' is missing (layer ${i} has other indexer tensors)`);
  const H = config.hiddenSize;
  const [dim, heads] = [store.entry(n.wk)!.shape[0], store.entry(n.proj)!.shape[0]];
  const want: Array<[string, number[]]> = [
    [n.wq, [heads * dim, H]],
    [n.wk, [dim, H]],
    [n.proj, [heads, H]],
    [n.kNormWeight, [dim]],
    [n.kNormBias, [dim]],
  ];
  for (const [name, shape] of want) {
    const e = store.entry(name);
    if (e && e.shape.join() !== shape.join())
      throw new InputError(
        `${e.file}: tensor '${name}' has shape [${e.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
  }
  const t = store.read(want.map(([name]) => name).filter((name) => store.has(name)));
  return {
    wq: t.get(n.wq)!,
    wk: t.get(n.wk)!,
    proj: t.get(n.proj)!,
    kNormWeight: t.get(n.kNormWeight),
    kNormBias: t.get(n.kNormBias),
  };
}
