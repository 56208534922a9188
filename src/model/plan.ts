// What a run needs in memory before it starts: weights, the KV cache of each layer's attention method, and
// the peak activations of chunked prefill. The KV formulas follow the caches as built: dense keeps every
// token; window/sinks keep S + L + 1 (ring buffer); CCA keeps floor(N/g) cores plus a raw ring of w + g - 1;
// DSA keeps dense K/V plus one index key of D_I per token. Activations: flash never materialises scores,
// dense attention materialises one chunk's H x C x N scores in f32.
import { SpecError } from '../errors.js';
import { ccaCacheBytes, ccaParamsFromSpec } from '../attention/cca.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { defaultPrefillChunk } from '../attention/planner.js';
import { formatMethodSpec, intParam, METHOD_KEYS, parseMethodSpec, type MethodSpec } from '../attention/spec.js';
import type { ModelConfig } from './types.js';
import { formatBytes as formatByteCount } from '../io/limits.js';
import { deviceProfile, layerKernels, matmulKernels, type LayerKernels } from './plan-kernels.js';

export interface PlanOptions {
  context: number;
  attention: string;
  batch?: number;
  /** Storage of the KV cache and activations. */
  dtype?: 'f16' | 'f32';
  /** Prefill chunk (tokens per step). */
  chunk?: number;
  /** Bytes of the weights when known (file headers); otherwise parameters x 2 (f16/bf16). */
  weightBytes?: number;
  weightSource?: string;
  /** Device profile whose kernels `plan` names (plan-kernels.ts): tensor-cores (default), lavapipe, portable, cpu. */
  device?: string;
  /** The model's trained DSA indexer, when its files have one (`longctx train-indexer`). */
  indexer?: IndexerPlan;
}

/** A trained DSA indexer: its weights, and the f32 index key of D_I per token its DSA layers keep. */
export interface IndexerPlan {
  layers: number;
  heads: number;
  dim: number;
  weightBytes: number;
  /** Whether weightBytes are already part of the model's weight bytes (a GGUF copy) or in a file beside them. */
  inWeights: boolean;
  source: string;
}

export interface LayerGroupPlan {
  method: string;
  layers: number;
  /** Rows (tokens or cores) cached per layer, per sequence. */
  cachedRows: number;
  /** KV bytes of one such layer, per sequence (index keys included for DSA). */
  kvBytesPerLayer: number;
  /** Score bytes one prefill chunk materialises (0 for flash-style kernels). */
  scoreBytes: number;
  /** The kernels the planner picks for a prefill chunk and a decoding step at the full context. */
  kernels?: LayerKernels;
  /** DSA: bytes of the index keys of one such layer, per sequence (part of kvBytesPerLayer). */
  indexKeyBytesPerLayer?: number;
}

export interface ModelPlan {
  context: number;
  batch: number;
  dtype: 'f16' | 'f32';
  chunk: number;
  attention: string;
  parameters: number;
  weightBytes: number;
  weightSource: string;
  groups: LayerGroupPlan[];
  kvCacheBytes: number;
  /** The same model with dense attention on every layer, for comparison. */
  denseKvCacheBytes: number;
  activationBytes: number;
  totalBytes: number;
  device: string;
  /** The projections' and MLP's matmul kernels for a prefill chunk and for one row. */
  matmul: LayerKernels;
  indexer?: IndexerPlan;
}

/** Index key width of DSA's indexer when the spec does not say (issue 4: 4 heads x 64 dims for Llama shapes). */
export const DSA_INDEX_DIM = 64;

export function parameterCount(c: ModelConfig): number {
  const { hiddenSize: h, heads, kvHeads, headDim: d, intermediateSize: ff, vocabSize: v } = c;
  const attn = h * heads * d * 2 + h * kvHeads * d * 2 + (c.attentionBias ? heads * d + 2 * kvHeads * d : 0);
  const perLayer = attn + 3 * h * ff + 2 * h;
  return v * h * (c.tiedEmbeddings ? 1 : 2) + h + c.layers * perLayer;
}

/** A method spec; DSA parses leniently until its keys are registered in the shared grammar. */
function parseLayerSpec(text: string): MethodSpec {
  const name = text.trim().split(':')[0];
  if (name !== 'dsa' || Object.hasOwn(METHOD_KEYS, 'dsa')) return parseMethodSpec(text);
  const params: Record<string, string> = {};
  const rest = text.trim().slice(name.length + 1);
  for (const part of rest ? rest.split(',') : []) {
    const [k, v] = part.split('=');
    if (!k || v === undefined) throw new SpecError(`'${part}' in '${text}' is not key=value`);
    params[k.trim()] = v.trim();
  }
  return { name, params };
}

function layerPlan(
  c: ModelConfig,
  spec: MethodSpec,
  n: number,
  chunk: number,
  bytes: number,
  indexer?: IndexerPlan,
): Omit<LayerGroupPlan, 'layers'> {
  const rowBytes = 2 * c.kvHeads * c.headDim * bytes;
  const dense = { method: formatMethodSpec(spec), cachedRows: n, kvBytesPerLayer: n * rowBytes, scoreBytes: 0 };
  switch (spec.name) {
    case 'dense':
      return { ...dense, scoreBytes: c.heads * chunk * n * 4 };
    case 'flash':
    case 'ring':
    case 'star':
      return dense;
    case 'window': {
      const rows = Math.min(n, intParam(spec, 'left') + 1);
      return { ...dense, cachedRows: rows, kvBytesPerLayer: rows * rowBytes };
    }
    case 'sinks': {
      const rows = Math.min(n, intParam(spec, 'tokens') + intParam(spec, 'left') + 1);
      return { ...dense, cachedRows: rows, kvBytesPerLayer: rows * rowBytes };
    }
    case 'cca': {
      const p = ccaParamsFromSpec(spec);
      const rows = Math.floor(n / p.group) + Math.min(n, p.window + p.group - 1);
      return {
        ...dense,
        cachedRows: rows,
        kvBytesPerLayer: ccaCacheBytes(n, c.kvHeads, c.headDim, bytes === 2 ? 'f16' : 'f32', p),
      };
    }
    case 'dsa': {
      // A trained indexer's keys are D_I wide and kept in f32 (model/caches/dsa-indexer.ts).
      const keys = indexer ? n * indexer.dim * 4 : n * intParam(spec, 'dim', DSA_INDEX_DIM) * bytes;
      return { ...dense, kvBytesPerLayer: n * rowBytes + keys, indexKeyBytesPerLayer: keys };
    }
    default:
      throw new SpecError(`plan does not know the KV cache of method '${spec.name}'`);
  }
}

export function planModel(c: ModelConfig, o: PlanOptions): ModelPlan {
  const n = o.context;
  const batch = o.batch ?? 1;
  const dtype = o.dtype ?? 'f16';
  const bytes = dtype === 'f16' ? 2 : 4;
  const profile = deviceProfile(o.device ?? 'tensor-cores');
  const chunk = Math.min(o.chunk ?? defaultPrefillChunk(profile, dtype, c.hiddenSize), n);
  if (!Number.isSafeInteger(n) || n < 1) throw new SpecError(`context must be a positive integer, got ${n}`);
  if (!Number.isSafeInteger(batch) || batch < 1) throw new SpecError(`batch must be a positive integer, got ${batch}`);
  if (!Number.isSafeInteger(chunk) || chunk < 1)
    throw new SpecError(`chunk must be a positive integer, got ${o.chunk}`);

  const top = parseLayerSpec(o.attention);
  const schedule = top.name === 'hybrid' ? scheduleFromSpec(top) : undefined;
  const groups = new Map<string, LayerGroupPlan>();
  for (let layer = 0; layer < c.layers; layer++) {
    const spec = schedule ? schedule.methodFor(layer) : top;
    const key = formatMethodSpec(spec);
    const g = groups.get(key);
    if (g) g.layers++;
    else
      groups.set(key, {
        ...layerPlan(c, spec, n, chunk, bytes, o.indexer),
        layers: 1,
        kernels: layerKernels(c, spec, {
          context: n,
          chunk,
          dtype,
          features: profile.features,
          maxWorkgroupStorageBytes: profile.maxWorkgroupStorageBytes,
        }),
      });
  }
  const list = [...groups.values()];
  const kvCacheBytes = batch * list.reduce((s, g) => s + g.layers * g.kvBytesPerLayer, 0);
  const denseKvCacheBytes = batch * c.layers * n * 2 * c.kvHeads * c.headDim * bytes;

  // One layer of one prefill chunk: hidden + residual live throughout; attention (q, k, v, output, scores)
  // and the MLP (gate, up) are not live at once. The last position's logits are f32.
  const { hiddenSize: h, heads, kvHeads, headDim: d, intermediateSize: ff } = c;
  const scores = Math.max(0, ...list.map((g) => g.scoreBytes));
  const attentionPhase = chunk * (2 * heads + 2 * kvHeads) * d * bytes + scores;
  const mlpPhase = 2 * chunk * ff * bytes;
  const activationBytes = batch * (2 * chunk * h * bytes + Math.max(attentionPhase, mlpPhase) + c.vocabSize * 4);

  const parameters = parameterCount(c);
  const weightBytes = o.weightBytes ?? parameters * 2;
  const indexerBytes = o.indexer && !o.indexer.inWeights ? o.indexer.weightBytes : 0;
  return {
    context: n,
    batch,
    dtype,
    chunk,
    attention: o.attention,
    parameters,
    weightBytes,
    weightSource: o.weightSource ?? 'parameters x 2 bytes (f16/bf16), from the config',
    groups: list,
    kvCacheBytes,
    denseKvCacheBytes,
    activationBytes,
    totalBytes: weightBytes + indexerBytes + kvCacheBytes + activationBytes,
    device: profile.description,
    matmul: matmulKernels(c, { chunk, dtype, profile }),
    indexer: o.indexer,
  };
}

function indexerLine(p: ModelPlan): string {
  const ix = p.indexer!;
  const keys = p.groups.reduce((s, g) => s + g.layers * (g.indexKeyBytesPerLayer ?? 0), 0) * p.batch;
  return (
    `${'DSA indexer'.padEnd(22)}${formatBytes(ix.weightBytes).padStart(12)}   trained (${ix.source}): ${ix.layers} layers, ` +
    `${ix.heads} heads x ${ix.dim}${ix.inWeights ? ', within the weights above' : ''}; ` +
    (keys > 0 ? `its index keys ${formatBytes(keys)} (in the KV cache)` : 'used by dsa layers (none here)')
  );
}

/** Plans print two decimals. */
export function formatBytes(b: number): string {
  return formatByteCount(b, 2);
}

/** 260K, 15.2M, 7.24B: three significant figures in the unit that fits. */
export function formatCount(n: number): string {
  const [unit, scale] = n >= 1e9 ? ['B', 1e9] : n >= 1e6 ? ['M', 1e6] : n >= 1e3 ? ['K', 1e3] : ['', 1];
  return `${Number((n / scale).toPrecision(3))}${unit}`;
}

export function formatPlan(p: ModelPlan, c: ModelConfig, source: string): string {
  const pad = (s: string, w: number): string => s.padEnd(w);
  const right = (s: string, w: number): string => s.padStart(w);
  const lines = [
    `model      ${source}: ${c.architecture}, ${c.layers} layers, ${c.heads} heads (${c.kvHeads} KV) x ${c.headDim}, ` +
      `hidden ${c.hiddenSize}, vocab ${c.vocabSize}, ${formatCount(p.parameters)} parameters`,
    `context    ${p.context} tokens, batch ${p.batch}, ${p.dtype} KV cache and activations, prefill in chunks of ${p.chunk}`,
    `attention  ${p.attention}`,
    '',
    `${pad('layers', 8)}${pad('method', 34)}${right('cached rows', 12)}${right('KV / layer', 14)}${right('KV total', 14)}`,
    ...p.groups.map(
      (g) =>
        `${pad(String(g.layers), 8)}${pad(g.method, 34)}${right(String(g.cachedRows), 12)}` +
        `${right(formatBytes(g.kvBytesPerLayer), 14)}${right(formatBytes(g.layers * g.kvBytesPerLayer * p.batch), 14)}`,
    ),
    '',
    `${pad('weights', 22)}${right(formatBytes(p.weightBytes), 12)}   ${p.weightSource}`,
    ...(p.indexer ? [indexerLine(p)] : []),
    `${pad('KV cache', 22)}${right(formatBytes(p.kvCacheBytes), 12)}   dense would be ` +
      `${formatBytes(p.denseKvCacheBytes)} (${((100 * p.kvCacheBytes) / p.denseKvCacheBytes).toFixed(1)}%)`,
    `${pad('prefill activations', 22)}${right(formatBytes(p.activationBytes), 12)}   peak of one layer, one ` +
      `chunk${p.groups.some((g) => g.scoreBytes > 0) ? ' (dense attention materialises chunk x N scores)' : ''}`,
    `${pad('total', 22)}${right(formatBytes(p.totalBytes), 12)}`,
    '',
    `kernels on ${p.device}:`,
    ...p.groups.flatMap((g) =>
      g.kernels ? [`  ${g.method}`, `    prefill  ${g.kernels.prefill}`, `    decode   ${g.kernels.decode}`] : [],
    ),
    '  projections and MLP',
    `    prefill  ${p.matmul.prefill}`,
    `    decode   ${p.matmul.decode}`,
  ];
  return lines.join('\n');
}
