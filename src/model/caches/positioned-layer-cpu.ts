// A CPU layer whose positions come from a training-free position method (src/model/positions: Self-Extend,
// dual-chunk, remapped top-k): it caches keys before RoPE ([Hkv, maxTokens, D], the size of a dense cache)
// and rotates per (query, key) pair as the method assigns their relative position. Exact attention, or within
// a window or sinks mask (model/positions/positions-beside.ts says which methods may sit beside positions).
// A saved session holds those unrotated rows (kv-cache-state.ts, a dense layout); RemapGpuLayer keeps the same.
// Beside dsa, remap's far keys come from the layer's DSA indexer (remap-indexer.ts): its index keys are held beside
// the rows, and such a layer's state is not saved (a session with it replays its prompt).
import { ShapeError } from '../../errors.js';
import type { LayerAttention, LayerCacheState, LayerChunk, LayerDims } from '../../attention/layer.js';
import { restoreKvCache, saveKvCache } from '../../attention/layers/kv-cache-state.js';
import { RingLayout } from '../../attention/layers/ring-layout.js';
import type { MethodSpec } from '../../attention/spec.js';
import { formatMethodSpec } from '../../attention/spec.js';
import { formatPositionSpec, type PositionMethod } from '../positions/position-method.js';
import type { PositionedAttentionCpu } from '../positions/positioned-attention-cpu.js';
import { positionsVisibleMask } from '../positions/positions-beside.js';
import type { MaskNode } from '../../spine/mask.js';
import type { LayerWeights, ModelConfig } from '../types.js';
import { cpuDevice } from '../../runtime/device.js';
import type { GatheredKeys } from '../../kernels/sparse-gather-cpu.js';
import { DsaLayer } from './dsa-layer.js';
import { remapIndexerParams } from './remap-indexer.js';

/** The spec of a saved positioned cache: its keys are unrotated, so it restores only where the same positions rotate them. */
export const positionedStateSpec = (spec: string, positions: PositionMethod) =>
  `${spec} positions ${formatPositionSpec(positions)}`;

export class PositionedCpuLayer implements LayerAttention<Float32Array> {
  readonly spec: string;
  readonly plan: string;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private length = 0;
  private readonly visible: MaskNode | undefined;
  private readonly stateSpec: string;
  /** Remap's selector beside dsa (its index keys and top-k); undefined: remap's own q.k, or no remap. */
  private readonly selector?: DsaLayer;

  constructor(
    private readonly dims: LayerDims,
    method: MethodSpec,
    positions: PositionMethod,
    private readonly attention: PositionedAttentionCpu,
    /** The layer's weights and the model's config: needed beside dsa (the indexer is built from them). */
    model?: { weights: LayerWeights; config: ModelConfig },
  ) {
    this.spec = formatMethodSpec(method);
    this.stateSpec = positionedStateSpec(this.spec, positions);
    this.visible = positionsVisibleMask(method, positions);
    let keys = this.visible ? `the ${method.name} mask` : 'exact attention';
    if (method.name === 'dsa' && positions.kind === 'remap') {
      if (!model) throw new ShapeError(`${this.spec} beside remap needs the layer's weights for its indexer`);
      this.selector = new DsaLayer(model.weights, model.config, remapIndexerParams(method, positions), dims.maxTokens);
      keys = `far keys picked by the DSA indexer (${this.selector.indexer.description}), window exact`;
    }
    this.plan = `${this.spec} with positions ${formatPositionSpec(positions)}: keys cached before RoPE, ${keys}`;
    const n = dims.kvHeads * dims.maxTokens * dims.headDim;
    this.k = new Float32Array(n);
    this.v = new Float32Array(n);
  }

  get cacheBytes(): number {
    return 2 * this.dims.kvHeads * this.length * this.dims.headDim * 4 + (this.selector?.bytes ?? 0);
  }

  async forward(c: LayerChunk<Float32Array>): Promise<void> {
    const { heads, kvHeads, headDim: D, maxTokens } = this.dims;
    const T = c.tokens;
    if (c.start !== this.length || c.start + T > maxTokens)
      throw new ShapeError(
        `${this.spec} layer holds ${this.length} of ${maxTokens} tokens; a chunk of ${T} came at ${c.start}`,
      );
    for (let g = 0; g < kvHeads; g++) {
      this.k.set(c.k.subarray(g * T * D, (g + 1) * T * D), (g * maxTokens + c.start) * D);
      this.v.set(c.v.subarray(g * T * D, (g + 1) * T * D), (g * maxTokens + c.start) * D);
    }
    const n = c.start + T;
    const group = heads / kvHeads;
    let picks: GatheredKeys | undefined;
    if (this.selector) {
      if (this.selector.needsInput && !c.input) throw new ShapeError(`${this.spec}: a trained indexer needs the input`);
      this.selector.append(c.k, T, c.input);
      picks = await this.selector.select(cpuDevice, c.q, T, c.input);
    }
    for (let g = 0; g < kvHeads; g++) {
      const q = c.q.subarray(g * group * T * D, (g + 1) * group * T * D);
      const keys = this.k.subarray(g * maxTokens * D, (g * maxTokens + n) * D);
      const values = this.v.subarray(g * maxTokens * D, (g * maxTokens + n) * D);
      const state = this.attention.attend(q, group, T, keys, values, n, D, c.start, this.visible, picks);
      c.out.set(state.o, g * group * T * D);
    }
    this.length = n;
  }

  reset(): void {
    this.length = 0;
    this.selector?.reset();
  }

  async saveCache(): Promise<LayerCacheState> {
    return saveKvCache(this.stateSpec, this.length, this.image());
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    // Beside dsa the index keys are not in the state: restoring the rows alone would select from nothing.
    if (
      this.selector ||
      state.spec !== this.stateSpec ||
      state.tokens > this.dims.maxTokens ||
      !restoreKvCache(state, this.image())
    )
      return false;
    this.length = state.tokens;
    return true;
  }

  private image() {
    const { kvHeads, headDim, maxTokens } = this.dims;
    return { kvHeads, headDim, dtype: 'f32' as const, layout: RingLayout.dense(maxTokens), k: this.k, v: this.v };
  }

  destroy(): void {}
}
