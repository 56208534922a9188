// A Llama-family decoder as an ONNX graph with past key/values, from the weights longctx loaded: the graph
// that ONNX Runtime's own model builder (onnxruntime-genai builder.py) writes for Llama and that
// transformers.js's WebGPU models use: SimplifiedLayerNormalization (RMSNorm), MatMul, and
// com.microsoft.GroupQueryAttention with RoPE inside it (do_rotary, cos/sin caches) and the KV cache as
// past_key_values.N.{key,value} [1, kvHeads, past, headDim] -> present.N.{key,value} [1, kvHeads, total, headDim].
// Only the last position's logits come out (what a greedy decoder reads), through Gemm(transB) on the output
// matrix as the file holds it, so a tied embedding is stored once. Weights go to one external data blob
// (ONNX Runtime Web's `externalData` option; its WebGPU EP copies them straight to GPU buffers).
import { UnsupportedError } from '../../errors.js';
import { toHalfBits } from '../../f16.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../../model/positions/rope.js';
import type { LoadedModel, WeightTensor } from '../../model/types.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import { encodeOnnxModel, type OnnxGraph, type OnnxInitializer, type OnnxNode } from './onnx-proto.js';

export const EXTERNAL_DATA_NAME = 'model.onnx.data';

export interface OnnxLlamaOptions {
  /** Storage and compute type of the graph: f32 for ONNX Runtime's CPU (wasm) kernels, f16 for WebGPU. */
  dtype: 'f32' | 'f16';
  /** Positions the RoPE caches cover: prompt + generated tokens of the longest run. */
  maxPositions: number;
}

export interface OnnxLlama {
  /** The ModelProto bytes. */
  model: Uint8Array;
  /** The external data the initializers point into (EXTERNAL_DATA_NAME). */
  data: Uint8Array;
  layers: number;
  kvHeads: number;
  headDim: number;
  dtype: 'f32' | 'f16';
}

/** Lays out tensors in the external blob: sizes first (so the blob is allocated once), then values. */
class ExternalData {
  readonly initializers: OnnxInitializer[] = [];
  private readonly writes: Array<(blob: ArrayBuffer) => void> = [];
  private size = 0;

  constructor(private readonly dtype: 'f32' | 'f16') {}

  private add(name: string, type: OnnxInitializer['type'], dims: number[], bytesPer: number, fill: Fill) {
    const count = dims.reduce((a, b) => a * b, 1);
    const offset = this.size;
    this.size += Math.ceil((count * bytesPer) / 64) * 64; // aligned, so typed-array views of the blob work
    this.initializers.push({ name, type, dims, location: EXTERNAL_DATA_NAME, offset, length: count * bytesPer });
    this.writes.push((blob) => fill(blob, offset, count));
    return name;
  }

  /** Floats in the graph's dtype: set(out, 0) writes all of them through `put(index, value)`. */
  floats(name: string, dims: number[], fill: (put: (i: number, v: number) => void) => void): string {
    const half = this.dtype === 'f16';
    return this.add(name, half ? 'float16' : 'float', dims, half ? 2 : 4, (blob, offset, count) => {
      if (half) {
        const out = new Uint16Array(blob, offset, count);
        fill((i, v) => {
          out[i] = toHalfBits(v);
        });
      } else {
        const out = new Float32Array(blob, offset, count);
        fill((i, v) => {
          out[i] = v;
        });
      }
    });
  }

  /** A small int64 constant, inline in the graph. */
  int64s(name: string, values: number[]): string {
    const raw = new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
    this.initializers.push({ name, type: 'int64', dims: [values.length], raw });
    return name;
  }

  /** A weight [out, in] as the file holds it, or transposed to [in, out] for MatMul (in tiles, for the cache). */
  weight(name: string, w: WeightTensor, transpose: boolean): string {
    const m = new WeightMatrix(w, false);
    const { rows, cols } = m;
    const vector = w.shape.length === 1;
    const dims = vector ? [cols] : transpose ? [cols, rows] : [rows, cols];
    return this.floats(name, dims, (put) => {
      const values = m.toFloat32();
      if (vector || !transpose) {
        for (let i = 0; i < values.length; i++) put(i, values[i]);
        return;
      }
      const T = 64;
      for (let r0 = 0; r0 < rows; r0 += T)
        for (let c0 = 0; c0 < cols; c0 += T)
          for (let r = r0; r < Math.min(rows, r0 + T); r++)
            for (let col = c0; col < Math.min(cols, c0 + T); col++) put(col * rows + r, values[r * cols + col]);
    });
  }

  finish(): Uint8Array {
    const blob = new ArrayBuffer(this.size);
    for (const write of this.writes) write(blob);
    this.writes.length = 0;
    return new Uint8Array(blob);
  }
}

type Fill = (blob: ArrayBuffer, offset: number, count: number) => void;

/** The decoder graph and its weights. */
export function llamaToOnnx(model: LoadedModel, o: OnnxLlamaOptions): OnnxLlama {
  const c = model.config;
  const w = model.weights;
  if (c.rope.kind === 'ntk' && c.rope.dynamic)
    throw new UnsupportedError('dynamic NTK RoPE changes with the length: a fixed ONNX RoPE cache cannot hold it');
  const data = new ExternalData(o.dtype);
  const nodes: OnnxNode[] = [];
  const node = (
    op: string,
    inputs: string[],
    outputs: string[],
    attributes?: OnnxNode['attributes'],
    domain?: string,
  ) => nodes.push({ op, inputs, outputs, name: outputs[0], attributes, domain });
  const eps = { float: c.rmsNormEps };
  const rmsNorm = (x: string, weight: string, out: string) =>
    node('SimplifiedLayerNormalization', [x, weight], [out], { axis: -1, epsilon: eps, stash_type: 1 });
  const matmul = (x: string, weight: WeightTensor, wName: string, out: string, bias?: WeightTensor) => {
    node('MatMul', [x, data.weight(wName, weight, true)], [bias ? `${out}.nobias` : out]);
    if (bias) node('Add', [`${out}.nobias`, data.weight(`${wName}.bias`, bias, false)], [out]);
  };

  // RoPE caches [maxPositions, headDim / 2]: cos and sin of position * inv_freq, times the attention factor.
  const half = c.headDim / 2;
  const inv = ropeInverseFrequencies(c);
  const factor = ropeAttentionFactor(c);
  const rope = (f: (x: number) => number) => (put: (i: number, v: number) => void) => {
    for (let t = 0; t < o.maxPositions; t++) for (let i = 0; i < half; i++) put(t * half + i, f(t * inv[i]) * factor);
  };
  data.floats('cos_cache', [o.maxPositions, half], rope(Math.cos));
  data.floats('sin_cache', [o.maxPositions, half], rope(Math.sin));

  const embedName = data.weight('embed_tokens', w.tokenEmbedding, false);
  node('Gather', [embedName, 'input_ids'], ['h.0'], { axis: 0 });
  const kvDims = (p: string) => [1, c.kvHeads, p, c.headDim];
  const type = o.dtype === 'f16' ? 'float16' : 'float';
  const inputs: OnnxGraph['inputs'] = [
    { name: 'input_ids', type: 'int64', dims: [1, 'sequence'] },
    { name: 'seqlens_k', type: 'int32', dims: [1] },
    { name: 'total_sequence_length', type: 'int32', dims: [1] },
  ];
  const outputs: OnnxGraph['outputs'] = [{ name: 'logits', type: 'float', dims: [1, c.vocabSize] }];
  for (let i = 0; i < c.layers; i++) {
    const L = w.layers[i];
    const p = `layers.${i}`;
    const h = `h.${i}`;
    rmsNorm(h, data.weight(`${p}.input_layernorm`, L.attnNorm, false), `${p}.attn_in`);
    matmul(`${p}.attn_in`, L.wq, `${p}.q_proj`, `${p}.q`, L.bq);
    matmul(`${p}.attn_in`, L.wk, `${p}.k_proj`, `${p}.k`, L.bk);
    matmul(`${p}.attn_in`, L.wv, `${p}.v_proj`, `${p}.v`, L.bv);
    const past = [`past_key_values.${i}.key`, `past_key_values.${i}.value`];
    const present = [`present.${i}.key`, `present.${i}.value`];
    inputs.push(...past.map((name) => ({ name, type, dims: kvDims('past') }) as const));
    outputs.push(...present.map((name) => ({ name, type, dims: kvDims('total') }) as const));
    node(
      'GroupQueryAttention',
      [`${p}.q`, `${p}.k`, `${p}.v`, ...past, 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
      [`${p}.attn`, ...present],
      {
        num_heads: c.heads,
        kv_num_heads: c.kvHeads,
        scale: { float: 1 / Math.sqrt(c.headDim) },
        do_rotary: 1,
        rotary_interleaved: c.ropeLayout === 'interleaved' ? 1 : 0,
      },
      'com.microsoft',
    );
    matmul(`${p}.attn`, L.wo, `${p}.o_proj`, `${p}.attn_out`);
    node('Add', [h, `${p}.attn_out`], [`${p}.mid`]);
    rmsNorm(`${p}.mid`, data.weight(`${p}.post_attention_layernorm`, L.ffnNorm, false), `${p}.mlp_in`);
    matmul(`${p}.mlp_in`, L.wGate, `${p}.gate_proj`, `${p}.gate`);
    matmul(`${p}.mlp_in`, L.wUp, `${p}.up_proj`, `${p}.up`);
    node('Sigmoid', [`${p}.gate`], [`${p}.gate_sigmoid`]);
    node('Mul', [`${p}.gate`, `${p}.gate_sigmoid`], [`${p}.gate_silu`]);
    node('Mul', [`${p}.gate_silu`, `${p}.up`], [`${p}.swiglu`]);
    matmul(`${p}.swiglu`, L.wDown, `${p}.down_proj`, `${p}.mlp_out`);
    node('Add', [`${p}.mid`, `${p}.mlp_out`], [`h.${i + 1}`]);
  }
  const last = data.int64s('slice_last', [-1]);
  const end = data.int64s('slice_end', [2 ** 31 - 1]);
  const axis1 = data.int64s('slice_axis', [1]);
  node('Slice', [`h.${c.layers}`, last, end, axis1], ['h.last']);
  rmsNorm('h.last', data.weight('norm', w.outputNorm, false), 'h.normed');
  node('Reshape', ['h.normed', data.int64s('flat_shape', [-1, c.hiddenSize])], ['h.flat']);
  const lmHead = w.output ? data.weight('lm_head', w.output, false) : embedName;
  const logits = o.dtype === 'f16' ? 'logits.f16' : 'logits';
  node('Gemm', ['h.flat', lmHead], [logits], { transB: 1 });
  if (o.dtype === 'f16') node('Cast', [logits], ['logits'], { to: 1 });
  const graph: OnnxGraph = {
    name: `longctx ${model.source}`,
    nodes,
    initializers: data.initializers,
    inputs,
    outputs,
    opsets: { '': 17, 'com.microsoft': 1 },
  };
  const modelBytes = encodeOnnxModel(graph);
  return {
    model: modelBytes,
    data: data.finish(),
    layers: c.layers,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    dtype: o.dtype,
  };
}
