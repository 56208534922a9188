// What the needle measurement keeps of one exact-attention prefill, fed by the decoder's observer chunk by
// chunk: every layer's post-RoPE keys, the answer position's query (and attention input h, for a trained
// indexer), CCA's pooled core keys for each group size, pooled by CCA's own pass 1 (kernels/cca-cpu.ts
// ccaPoolCpu: the softmax of the group's last query over its g keys, averaged over the KV head's query
// heads) as soon as a group's last token has been seen, and a trained indexer's keys as they come.
// Cores come from the exact model's q and k: what CCA's pass 1 would pool if the layers below had attended
// exactly (in a CCA model, layers above the first see slightly different hidden states).
import { InputError } from '../errors.js';
import { ccaPoolCpu, type CcaLayout } from '../kernels/cca-cpu.js';
import { trainedIndexKeysInto, type LayerIndexer } from '../model/caches/dsa-indexer.js';
import type { ModelConfig } from '../model/types.js';

export interface CaptureOptions {
  /** Most tokens a case holds (buffers are sized once). */
  capacity: number;
  /** CCA group sizes whose cores are pooled. */
  groups: number[];
  /** Per layer, the trained indexer whose keys are kept (none: no trained indexer). */
  trained?: LayerIndexer[];
}

export class NeedleCapture {
  /** Per layer [Hkv, capacity, D]. */
  readonly keys: Float32Array[];
  /** Per layer [Hq, D], the answer position's query. */
  readonly query: Float32Array[];
  /** Per layer the answer position's attention input [hidden] (trained indexers). */
  readonly input: Float32Array[];
  /** By group size, per layer [Hkv, floor(capacity / g), D]. */
  readonly cores = new Map<number, Float32Array[]>();
  /** Per layer [capacity, D_I] (trained indexers). */
  readonly trainedKeys: Float32Array[];
  /** The position whose query is kept; set before each prefill. */
  answerAt = -1;
  private readonly seen: Set<number>[];

  constructor(
    private readonly c: ModelConfig,
    private readonly o: CaptureOptions,
  ) {
    const [L, Hq, Hkv, D, N] = [c.layers, c.heads, c.kvHeads, c.headDim, o.capacity];
    this.keys = Array.from({ length: L }, () => new Float32Array(Hkv * N * D));
    this.query = Array.from({ length: L }, () => new Float32Array(Hq * D));
    this.input = Array.from({ length: L }, () => new Float32Array(o.trained ? c.hiddenSize : 0));
    this.trainedKeys = (o.trained ?? []).map((ix) => new Float32Array(N * ix.dim));
    for (const g of o.groups)
      this.cores.set(
        g,
        Array.from({ length: L }, () => new Float32Array(Hkv * Math.floor(N / g) * D)),
      );
    this.seen = Array.from({ length: L }, () => new Set<number>());
  }

  /** Starts a case whose answer (last prompt token) sits at `answerAt`. */
  reset(answerAt: number): void {
    if (answerAt >= this.o.capacity) throw new InputError(`a ${answerAt + 1}-token case exceeds ${this.o.capacity}`);
    this.answerAt = answerAt;
    for (const s of this.seen) s.clear();
  }

  /** True when every layer saw the answer position's query in this case. */
  get complete(): boolean {
    return this.seen.every((s) => s.has(this.answerAt));
  }

  /** The decoder's observer (DecoderOptions.observe): q [Hq, T, D], k [Hkv, T, D], h [T, hidden]. */
  readonly observe = (layer: number, pos: number, T: number, q: Float32Array, k: Float32Array, h?: Float32Array) => {
    const c = this.c;
    const [Hq, Hkv, D, N] = [c.heads, c.kvHeads, c.headDim, this.o.capacity];
    if (pos + T > N) throw new InputError(`the prefill passed ${N} tokens, the capture's capacity`);
    const keys = this.keys[layer];
    for (let j = 0; j < Hkv; j++) keys.set(k.subarray(j * T * D, (j + 1) * T * D), (j * N + pos) * D);
    const t = this.answerAt - pos;
    if (t >= 0 && t < T) {
      for (let j = 0; j < Hq; j++) this.query[layer].set(q.subarray((j * T + t) * D, (j * T + t + 1) * D), j * D);
      if (this.o.trained) {
        if (!h) throw new InputError('a trained indexer is measured on a backend whose observer hands over h');
        this.input[layer].set(h.subarray(t * c.hiddenSize, (t + 1) * c.hiddenSize));
      }
      this.seen[layer].add(this.answerAt);
    }
    if (this.o.trained) {
      if (!h) throw new InputError('a trained indexer is measured on a backend whose observer hands over h');
      trainedIndexKeysInto(this.o.trained[layer], h, T, pos, this.trainedKeys[layer], pos);
    }
    for (const g of this.o.groups) this.pool(layer, g, pos, T, q);
  };

  /** Pools the groups whose last token lies in this chunk, [pos, pos + T), with CCA's pass 1. */
  private pool(layer: number, g: number, pos: number, T: number, q: Float32Array): void {
    const c = this.c;
    const N = this.o.capacity;
    const first = Math.ceil((pos + 1) / g) - 1;
    const last = Math.floor((pos + T) / g) - 1;
    const count = last - first + 1;
    if (count <= 0) return;
    const stride = Math.floor(N / g);
    const layout: CcaLayout = {
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.headDim,
      scale: 1 / Math.sqrt(c.headDim),
      group: g,
      window: 1,
      queries: T,
      queryStart: pos,
      raw: N,
      rawStart: 0,
      cores: stride,
    };
    const D = c.headDim;
    const coreK = new Float32Array(c.kvHeads * count * D);
    const coreV = new Float32Array(coreK.length); // pass 1 pools values too; only the keys are scored here
    const keys = this.keys[layer];
    ccaPoolCpu(q, keys, keys, layout, first, count, coreK, coreV);
    const out = this.cores.get(g)![layer];
    for (let j = 0; j < c.kvHeads; j++)
      out.set(coreK.subarray(j * count * D, (j + 1) * count * D), (j * stride + first) * D);
  }
}
