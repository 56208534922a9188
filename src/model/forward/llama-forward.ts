// The Llama-family forward pass, written once over ForwardOps (ops.ts): embeddings; per layer RMSNorm ->
// Q/K/V (+ Qwen2 biases) -> RoPE -> the layer's attention object -> output projection -> residual,
// RMSNorm -> SwiGLU MLP -> residual; final RMSNorm and the (possibly tied) output projection of the last
// position. A prompt runs in chunks against the layers' caches. CpuDecoder and GpuDecoder only build
// their backend's ops, weights, activations and layers.
import { ShapeError } from '../../errors.js';
import type { LayerAttention, LayerCacheState } from '../../attention/layer.js';
import type { ModelConfig } from '../types.js';
import type { Activations, ForwardOps, ModelWeightsOf } from './ops.js';
import type { Decoder, DecoderOptions, PendingCaches, SavedCaches } from './decoder-cpu.js';

/** Output x input features of every matrix product forwardChunk runs (q, k and v stacked or not); the output
 * head's (last) runs one row. */
export function matmulShapes(c: ModelConfig): Array<[number, number]> {
  const [H, D, F] = [c.hiddenSize, c.headDim, c.intermediateSize];
  const all: Array<[number, number]> = [
    [(c.heads + 2 * c.kvHeads) * D, H],
    [c.heads * D, H],
    [c.kvHeads * D, H],
    [H, c.heads * D],
    [F, H],
    [H, F],
    [c.vocabSize, H],
  ];
  return all.filter(([n, k], i) => all.findIndex(([a, b]) => a === n && b === k) === i);
}

export class LlamaDecoder<B, M, V> implements Decoder {
  private pos = 0;
  private prompt?: number;

  constructor(
    readonly config: ModelConfig,
    protected readonly ops: ForwardOps<B, M, V>,
    protected readonly weights: ModelWeightsOf<M, V>,
    protected readonly attention: LayerAttention<B>[],
    protected readonly act: Activations<B>,
    protected readonly chunk: number,
    protected readonly opts: DecoderOptions,
  ) {}

  get position(): number {
    return this.pos;
  }

  /** KV-cache bytes the layers hold now. */
  get cacheBytes(): number {
    return this.attention.reduce((sum, a) => sum + a.cacheBytes, 0);
  }

  /** Each layer's method and kernel choice (`generate --stats`, the benchmarks). */
  get plans(): string[] {
    return this.attention.map((a) => a.plan);
  }

  /** Continues the sequence at `position`, leaving the positions between unheld (a Star context host holds
   * the anchor, then its own blocks; RoPE keeps the true positions). */
  skipTo(position: number): void {
    if (!Number.isInteger(position) || position < this.pos || position > this.opts.maxTokens)
      throw new ShapeError(`cannot skip from position ${this.pos} to ${position} (run of ${this.opts.maxTokens})`);
    this.pos = position;
  }

  reset(): void {
    this.pos = 0;
    this.attention.forEach((a) => a.reset());
  }

  destroy(): void {
    this.attention.forEach((a) => a.destroy());
  }

  async saveCaches(): Promise<SavedCaches | undefined> {
    if (!this.attention.every((a) => a.saveCache)) return undefined;
    const layers: LayerCacheState[] = [];
    for (const a of this.attention) layers.push(await a.saveCache!());
    return { position: this.pos, promptTokens: this.prompt, layers };
  }

  async restoreCaches(saved: PendingCaches): Promise<boolean> {
    this.reset();
    if (saved.layers.length !== this.attention.length || saved.position > this.opts.maxTokens) return false;
    try {
      for (const [i, a] of this.attention.entries()) {
        const l = saved.layers[i];
        const state = typeof l === 'function' ? await l() : l;
        if (!a.restoreCache || state.tokens !== saved.position || !(await a.restoreCache(state))) {
          this.reset();
          return false;
        }
      }
    } catch (e) {
      this.reset();
      throw e;
    }
    this.pos = saved.position;
    this.prompt = saved.promptTokens;
    return true;
  }

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    const c = this.config;
    if (tokens.length === 0) throw new ShapeError('forward needs at least one token');
    if (this.pos + tokens.length > this.opts.maxTokens)
      throw new ShapeError(
        `the run was sized for ${this.opts.maxTokens} tokens; ${this.pos} + ${tokens.length} exceed it`,
      );
    for (const id of tokens)
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
        throw new ShapeError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    if (this.pos === 0) this.prompt = tokens.length;
    return this.ops.forwardScope(async () => {
      for (let a = 0; a < tokens.length; a += this.chunk)
        await this.forwardChunk(tokens.slice(a, a + this.chunk), a + this.chunk >= tokens.length);
      return this.ops.read(this.act.logits, c.vocabSize);
    });
  }

  private async forwardChunk(tokens: readonly number[], last: boolean): Promise<void> {
    const { ops, act: a, weights: w, config: c } = this;
    const T = tokens.length;
    const [H, D, Hq, Hkv, F] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize];
    ops.embed(w.embedding, tokens, this.pos, a.x);
    const layers = w.layers.length;
    for (const [li, l] of w.layers.entries()) {
      // The NaN policy's check of layer li - 1's output rides on this norm, which reads all of it.
      ops.rmsNorm(a.x, l.attnNorm, a.h, T, 0, li > 0 ? { layer: li - 1, position: this.pos } : undefined);
      const p = l.qkv;
      if ('fused' in p) ops.matmul(a.h, p.fused, a.qkv, T, (Hq + 2 * Hkv) * D, H, p.bias);
      else {
        ops.matmul(a.h, p.q, a.q, T, Hq * D, H, p.bq);
        ops.matmul(a.h, p.k, a.k, T, Hkv * D, H, p.bk);
        ops.matmul(a.h, p.v, a.v, T, Hkv * D, H, p.bv);
      }
      // A position method rotates per (query, key) pair inside its layer: q and k then stay unrotated.
      const rotate = !this.opts.positions || this.opts.positions.kind === 'none';
      ops.ropeQkv('fused' in p ? { fused: a.qkv } : a, a.qh, a.kh, a.vh, T, rotate);
      await ops.submit('attention inputs');
      if (this.opts.observe)
        this.opts.observe(
          li,
          this.pos,
          T,
          await ops.read(a.qh, Hq * T * D, true),
          await ops.read(a.kh, Hkv * T * D, true),
          await ops.read(a.h, T * H),
        );
      await this.attention[li].forward({
        q: a.qh,
        k: a.kh,
        v: a.vh,
        out: a.oh,
        start: this.pos,
        tokens: T,
        promptTokens: this.prompt,
        input: a.h,
      });
      // One token's head-major output is already token-major: no copy.
      if (T > 1) ops.headsToTokens(a.oh, a.o, T, Hq);
      ops.matmulAdd(T > 1 ? a.o : a.oh, l.wo, a.x, T, H, Hq * D, a.proj);
      ops.rmsNorm(a.x, l.ffnNorm, a.h, T);
      ops.gateUp(a.h, l.wGate, l.wUp, a.gate, a.up, T, F, H);
      ops.matmulAdd(a.gate, l.wDown, a.x, T, H, F, a.proj);
      if (li === layers - 1) ops.checkFinite?.(a.x, T * H, li, this.pos); // the final norm reads one row
    }
    this.pos += T;
    if (last) {
      ops.rmsNorm(a.x, w.outputNorm, a.last, 1, T - 1);
      ops.matmul(a.last, w.output, a.logits, 1, c.vocabSize, H);
    }
    await ops.submit('attention output, MLP and logits');
  }
}
