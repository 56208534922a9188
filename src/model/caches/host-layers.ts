// CCA and DSA layers through their existing host implementations, behind the layer interface: the CPU
// decoder's DSA layer (a trained indexer's input h included) and CCA on the CPU or, read back, on WebGPU
// (an option beside the resident layers, attention/layers/cca-gpu.ts and dsa-gpu.ts, which
// gpuLayerFactories (layer-factory.ts) picks; the WebGPU DSA host layer went when the trained indexer became
// resident).
import { ShapeError } from '../../errors.js';
import { asFloat32, tensor, type DType, type Tensor } from '../../tensor.js';
import { cpuDevice, type Device } from '../../runtime/device.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { attendSelected } from '../../attention/dsa.js';
import type { CcaKVCache } from '../../attention/cca-cache.js';
import { formatMethodSpec, type MethodSpec } from '../../attention/spec.js';
import type { LayerAttention, LayerCacheState, LayerChunk, LayerDims } from '../../attention/layer.js';
import { saveCcaCache } from '../../attention/layers/cca-cache-state.js';
import { dsaIndexKeys, saveDsaCache } from '../../attention/layers/dsa-cache-state.js';
import { restoreKvCache } from '../../attention/layers/kv-cache-state.js';
import { RingLayout } from '../../attention/layers/ring-layout.js';
import { DenseKVCache } from './kv-cache.js';
import { DsaLayer, dsaLayerParams } from './dsa-layer.js';
import { ccaLayerCache } from './method-caches.js';
import type { LayerWeights, ModelConfig } from '../types.js';

/** How a host layer reaches its chunk: host arrays as they are, or GPU buffers read back and written up. */
export interface HostIo<Buffer> {
  device: Device;
  /** The first shape-many values of b, in `dtype` (the storage dtype, or f32 for activations). */
  read(b: Buffer, shape: number[], dtype?: DType): Promise<Tensor>;
  write(out: Buffer, o: Float32Array): void;
}

const count = (shape: number[]) => shape.reduce((a, x) => a * x, 1);

export const cpuIo: HostIo<Float32Array> = {
  device: cpuDevice,
  read: async (b, shape) => tensor(shape, 'f32', b.subarray(0, count(shape))),
  write: (out, o) => out.set(o),
};

export function gpuIo(gpu: GpuContext, storage: DType): HostIo<GPUBuffer> {
  return {
    device: { backend: 'webgpu', name: gpu.adapterName, gpu, destroy() {} },
    read: async (b, shape, dtype = storage) => {
      const bytes = await gpu.read(b, count(shape) * (dtype === 'f16' ? 2 : 4));
      return tensor(shape, dtype, dtype === 'f16' ? new Uint16Array(bytes) : new Float32Array(bytes));
    },
    write: (out, o) => gpu.write(out, 0, o as Float32Array<ArrayBuffer>),
  };
}

/** CCA through its host cache (attention/cca-cache.ts). */
export class CcaHostLayer<Buffer> implements LayerAttention<Buffer> {
  readonly spec: string;
  private cache: CcaKVCache;

  constructor(
    private readonly io: HostIo<Buffer>,
    private readonly config: ModelConfig,
    private readonly method: MethodSpec,
    private readonly dtype: LayerDims['dtype'],
  ) {
    this.spec = formatMethodSpec(method);
    this.cache = ccaLayerCache(config, method, dtype)!;
  }

  get plan(): string {
    return `${this.spec}: CCA through its host cache (q, k, v read back per chunk: to be replaced by the GPU-resident layer)`;
  }

  get cacheBytes(): number {
    return this.cache.bytes;
  }

  async forward(c: LayerChunk<Buffer>): Promise<void> {
    const { heads, kvHeads, headDim: D } = this.config;
    const T = c.tokens;
    const q = await this.io.read(c.q, [heads, T, D]);
    const k = await this.io.read(c.k, [kvHeads, T, D]);
    const v = await this.io.read(c.v, [kvHeads, T, D]);
    const state = await this.cache.forward(cpuDevice, q, k, v);
    this.io.write(c.out, state.o);
  }

  reset(): void {
    this.cache = ccaLayerCache(this.config, this.method, this.dtype)!;
  }

  async saveCache(): Promise<LayerCacheState> {
    return saveCcaCache(this.cache.length, this.cache.image());
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    this.reset();
    return this.cache.restore(state);
  }

  destroy(): void {}
}

type KeyLists = Awaited<ReturnType<DsaLayer['select']>>;

/** DSA: index keys and selection on the host (dsa-layer.ts); keys and values in a dense cache. */
abstract class DsaHostLayer<Buffer> implements LayerAttention<Buffer> {
  readonly spec: string;
  protected readonly dsa: DsaLayer;

  constructor(
    protected readonly io: HostIo<Buffer>,
    protected readonly dims: LayerDims,
    weights: LayerWeights,
    private readonly config: ModelConfig,
    method: MethodSpec,
  ) {
    this.spec = formatMethodSpec(method);
    this.dsa = new DsaLayer(weights, config, dsaLayerParams(method), dims.maxTokens);
  }

  get plan(): string {
    return (
      `${this.spec}: indexer ${this.dsa.indexer.description}; it and the top-k selection on the host ` +
      `(q and k read back per chunk), gathered attention on the layer's backend`
    );
  }

  /** What a saved state of this layer says it is (its index keys are f32 on the host, whichever backend). */
  protected get stateParams() {
    return { ...this.dsa.params, trained: this.dsa.needsInput };
  }

  abstract get cacheBytes(): number;
  abstract reset(): void;
  abstract destroy(): void;
  /** Appends the chunk's keys and values; attends with the selected key lists. */
  protected abstract attend(c: LayerChunk<Buffer>, q: Float32Array, lists: KeyLists): Promise<void>;

  async forward(c: LayerChunk<Buffer>): Promise<void> {
    const { heads, kvHeads, headDim: D } = this.dims;
    const T = c.tokens;
    if (c.start !== this.dsa.length)
      throw new ShapeError(`${this.spec} layer holds ${this.dsa.length} tokens; a chunk came at ${c.start}`);
    const q = asFloat32(await this.io.read(c.q, [heads, T, D]));
    const k = asFloat32(await this.io.read(c.k, [kvHeads, T, D]));
    let h: Float32Array | undefined;
    if (this.dsa.needsInput) {
      if (!c.input) throw new ShapeError(`${this.spec}: a trained indexer needs the attention input`);
      h = asFloat32(await this.io.read(c.input, [T, this.config.hiddenSize], 'f32'));
    }
    this.dsa.append(k, T, h);
    const lists = await this.dsa.select(this.io.device, q, T, h);
    await this.attend(c, q, lists);
  }
}

export class DsaCpuLayer extends DsaHostLayer<Float32Array> {
  private readonly cache: DenseKVCache;

  constructor(dims: LayerDims, weights: LayerWeights, config: ModelConfig, method: MethodSpec) {
    super(cpuIo, dims, weights, config, method);
    this.cache = new DenseKVCache(dims.kvHeads, dims.headDim, dims.maxTokens);
  }

  get cacheBytes(): number {
    return this.cache.bytes + this.dsa.bytes;
  }

  reset(): void {
    this.cache.reset();
    this.dsa.reset();
  }

  destroy(): void {}

  async saveCache(): Promise<LayerCacheState> {
    const ix = { keys: this.dsa.heldIndexKeys };
    return saveDsaCache(this.stateParams, this.dsa.length, this.kvImage(), this.dsa.indexer.dim, ix);
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    this.reset();
    if (state.tokens > this.dims.maxTokens) return false;
    const ix = dsaIndexKeys(state, this.stateParams, this.dsa.indexer.dim, false);
    if (!ix || !restoreKvCache(state, this.kvImage())) return false;
    this.dsa.restoreIndexKeys(ix.keys as Float32Array, state.tokens);
    this.cache.length = state.tokens;
    return true;
  }

  private kvImage() {
    const { kvHeads, headDim } = this.dims;
    const layout = RingLayout.dense(this.cache.capacity);
    return { kvHeads, headDim, dtype: 'f32' as const, layout, k: this.cache.all.k, v: this.cache.all.v };
  }

  protected async attend(c: LayerChunk<Float32Array>, q: Float32Array, lists: KeyLists): Promise<void> {
    const { heads, kvHeads, headDim: D } = this.dims;
    const T = c.tokens;
    const group = heads / kvHeads;
    const keys = this.cache.append(c.k, c.v, T);
    for (let g = 0; g < kvHeads; g++) {
      const qg = tensor([group, T, D], 'f32', q.subarray(g * group * T * D, (g + 1) * group * T * D));
      const kg = tensor([1, keys.n, D], 'f32', keys.keys[g]);
      const vg = tensor([1, keys.n, D], 'f32', keys.values[g]);
      const state = await attendSelected(cpuDevice, qg, kg, vg, lists, { causal: true });
      c.out.set(state.o, g * group * T * D);
    }
  }
}
