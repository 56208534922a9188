// The CPU twin of kv-layer-gpu.ts: the same cache layout (ring-layout.ts), the same choice of which rows a
// chunk reads (decoding: every held row in slot order; prefill: position-ordered rows under the mask, from
// the cache while nothing was overwritten, else sinks + ring unrolled into a scratch) and per key/value
// head one attention call on contiguous views of the cache, so nothing is copied while decoding.
import { ShapeError } from '../../errors.js';
import { tensor } from '../../tensor.js';
import { cpuDevice } from '../../runtime/device.js';
import { denseAttention } from '../dense.js';
import { flashAttention } from '../flash.js';
import type { MaskNode } from '../../spine/mask.js';
import { formatMethodSpec, type MethodSpec } from '../spec.js';
import type { LayerAttention, LayerCacheState, LayerChunk, LayerDims } from '../layer.js';
import { restoreKvCache, saveKvCache } from './kv-cache-state.js';
import { kvMethod, type KvMethod } from './kv-method.js';

export class CpuKvLayer implements LayerAttention<Float32Array> {
  readonly spec: string;
  private readonly method: KvMethod;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private packK = new Float32Array(0);
  private packV = new Float32Array(0);
  private length = 0;

  constructor(
    private readonly dims: LayerDims,
    spec: MethodSpec,
  ) {
    this.method = kvMethod(spec, dims.maxTokens, dims.ring ?? true);
    this.spec = formatMethodSpec(spec);
    const n = dims.kvHeads * this.method.layout.slots * dims.headDim;
    this.k = new Float32Array(n);
    this.v = new Float32Array(n);
  }

  /** Bytes of the rows held now (the cache is allocated once for the run). */
  get cacheBytes(): number {
    return 2 * this.dims.kvHeads * this.method.layout.held(this.length) * this.dims.headDim * 4;
  }

  get plan(): string {
    const l = this.method.layout;
    const kernel =
      this.method.kernel === 'dense' ? 'dense (materialised scores)' : 'flash: cpu-tiled (64 x 64 tiles): the CPU twin';
    return `${this.spec}: cache ${l.sinks ? `${l.sinks} sinks + ` : ''}${l.ring} rows; ${kernel}`;
  }

  reset(): void {
    this.length = 0;
  }

  destroy(): void {}

  async saveCache(): Promise<LayerCacheState> {
    return saveKvCache(this.spec, this.length, this.image());
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    if (state.spec !== this.spec || state.tokens > this.dims.maxTokens || !restoreKvCache(state, this.image()))
      return false;
    this.length = state.tokens;
    return true;
  }

  private image() {
    const { kvHeads, headDim } = this.dims;
    return { kvHeads, headDim, dtype: 'f32' as const, layout: this.method.layout, k: this.k, v: this.v };
  }

  async forward(c: LayerChunk<Float32Array>): Promise<void> {
    const { start, tokens: T } = c;
    const { kvHeads, headDim: D, heads } = this.dims;
    if (start !== this.length)
      throw new ShapeError(`${this.spec} layer holds ${this.length} tokens; a chunk came at ${start}`);
    if (start + T > this.dims.maxTokens)
      throw new ShapeError(`${this.spec} layer: ${start} + ${T} exceed the run's ${this.dims.maxTokens} tokens`);
    const layout = this.method.layout;
    const stride = layout.slots;
    const end = start + T;
    let rows: { k: Float32Array; v: Float32Array; stride: number; n: number; causal: boolean; mask?: MaskNode };
    if (T === 1 && this.method.seesAllRows(start, c.promptTokens)) {
      this.append(c);
      rows = { k: this.k, v: this.v, stride, n: layout.held(end), causal: false };
    } else if (layout.inOrder(end)) {
      this.append(c);
      rows = { k: this.k, v: this.v, stride, n: end, causal: true, mask: this.method.mask(c.promptTokens) };
    } else {
      const past = layout.past(start);
      const n = past.sinks + (start - past.first) + T;
      if (this.packK.length < kvHeads * n * D) {
        this.packK = new Float32Array(kvHeads * n * D);
        this.packV = new Float32Array(kvHeads * n * D);
      }
      const runs = [...layout.runs(0, past.sinks), ...layout.runs(past.first, start)];
      for (let h = 0; h < kvHeads; h++)
        for (const [cache, chunk, pack] of [
          [this.k, c.k, this.packK],
          [this.v, c.v, this.packV],
        ] as const) {
          let at = h * n;
          for (const r of runs) {
            pack.set(cache.subarray((h * stride + r.slot) * D, (h * stride + r.slot + r.rows) * D), at * D);
            at += r.rows;
          }
          pack.set(chunk.subarray(h * T * D, (h + 1) * T * D), at * D);
        }
      this.append(c);
      rows = { k: this.packK, v: this.packV, stride: n, n, causal: true, mask: this.method.mask(c.promptTokens) };
    }
    const group = heads / kvHeads;
    for (let g = 0; g < kvHeads; g++) {
      const q = tensor([group, T, D], 'f32', c.q.subarray(g * group * T * D, (g + 1) * group * T * D));
      const k = tensor([1, rows.n, D], 'f32', rows.k.subarray(g * rows.stride * D, (g * rows.stride + rows.n) * D));
      const v = tensor([1, rows.n, D], 'f32', rows.v.subarray(g * rows.stride * D, (g * rows.stride + rows.n) * D));
      const state =
        this.method.kernel === 'dense'
          ? await denseAttention(cpuDevice, q, k, v, { causal: rows.causal })
          : await flashAttention(cpuDevice, q, k, v, { causal: rows.causal, mask: rows.mask });
      c.out.set(state.o, g * group * T * D);
    }
    this.length = end;
  }

  /** The chunk's rows into their slots (kernels/kv-append-wgsl.ts on the GPU). */
  private append(c: LayerChunk<Float32Array>): void {
    const { kvHeads, headDim: D } = this.dims;
    const layout = this.method.layout;
    const T = c.tokens;
    for (const [from, to] of layout.survivors(c.start, c.start + T))
      for (let p = from; p < to; p++) {
        const row = layout.slot(p);
        for (let h = 0; h < kvHeads; h++) {
          const src = (h * T + p - c.start) * D;
          this.k.set(c.k.subarray(src, src + D), (h * layout.slots + row) * D);
          this.v.set(c.v.subarray(src, src + D), (h * layout.slots + row) * D);
        }
      }
  }
}
