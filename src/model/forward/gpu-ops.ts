// ForwardOps on WebGPU: operations are recorded as dispatches and run as one compute pass at each submit.
// Uniforms and bind groups are per call site (runtime/call-sites.ts), renumbered at each chunk's embed, so
// a warm decoding step creates nothing; RoPE's table (float64 angles on the host) goes up with the ids.
import { asFloat32, tensor } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { chooseKernel, MATMUL_VERSIONS } from '../../attention/planner.js';
import {
  MATMUL_TILE,
  MATVEC_ROWS_PER_DIM,
  matmulParams,
  matmulTiledWgsl,
  matvecWgsl,
} from '../../kernels/matmul-wgsl.js';
import { rmsNormParams, rmsNormWgsl } from '../../kernels/rmsnorm-wgsl.js';
import { ROPE_THREADS, ropeParams, ropeWgsl } from '../../kernels/rope-wgsl.js';
import {
  ELEMENTWISE_THREADS,
  addWgsl,
  elementwiseParams,
  embeddingWgsl,
  grid,
  headsToTokensWgsl,
  swigluWgsl,
} from '../../kernels/elementwise-wgsl.js';
import type { ModelConfig } from '../types.js';
import type { ForwardOps } from './ops.js';
import { ropeTable } from './rope-table.js';
import { finiteFlagGroups, finiteFlagParams, finiteFlagWgsl } from '../../kernels/finite-flag-wgsl.js';
import type { FiniteFlags } from './finite-flags-gpu.js';

type Pipelines = Record<
  'matvec' | 'matmul' | 'rmsnorm' | 'rope' | 'embedding' | 'add' | 'swiglu' | 'heads' | 'finite',
  GPUComputePipeline
>;
type Recorded = (pass: GPUComputePassEncoder) => void;

export class GpuOps implements ForwardOps<GPUBuffer, GPUBuffer, GPUBuffer> {
  private readonly sites: CallSites;
  private recorded: Recorded[] = [];

  private constructor(
    private readonly gpu: GpuContext,
    private readonly c: ModelConfig,
    private readonly storage: 'f32' | 'f16',
    private readonly pipes: Pipelines,
    /** ids [chunk] (u32), the RoPE table, and a placeholder bound where a matmul has no bias. */
    private readonly io: { ids: GPUBuffer; rope: GPUBuffer; none: GPUBuffer },
    /** Per-layer non-finite flags, read back with the logits (the NaN policy). */
    private readonly flags?: FiniteFlags,
  ) {
    this.sites = new CallSites(gpu, 'decoder');
  }

  static async create(
    gpu: GpuContext,
    c: ModelConfig,
    storage: 'f32' | 'f16',
    io: { ids: GPUBuffer; rope: GPUBuffer; none: GPUBuffer },
    flags?: FiniteFlags,
  ): Promise<GpuOps> {
    const pipes: Pipelines = {
      matvec: await gpu.pipeline(`model-matvec-${storage}`, () => matvecWgsl(storage)),
      matmul: await gpu.pipeline(`model-matmul-${storage}`, () => matmulTiledWgsl(storage)),
      rmsnorm: await gpu.pipeline('model-rmsnorm', rmsNormWgsl),
      rope: await gpu.pipeline(`model-rope-${storage}`, () => ropeWgsl(storage)),
      embedding: await gpu.pipeline(`model-embedding-${storage}`, () => embeddingWgsl(storage)),
      add: await gpu.pipeline('model-add', addWgsl),
      swiglu: await gpu.pipeline('model-swiglu', swigluWgsl),
      heads: await gpu.pipeline('model-heads', headsToTokensWgsl),
      finite: await gpu.pipeline('model-finite-flag', finiteFlagWgsl),
    };
    return new GpuOps(gpu, c, storage, pipes, io, flags);
  }

  private dispatch(pipe: GPUComputePipeline, buffers: GPUBuffer[], groups: readonly number[]): void {
    this.recorded.push((pass) => this.sites.dispatch(pass, pipe, buffers, groups));
  }

  private elementwise(pipe: GPUComputePipeline, buffers: GPUBuffer[], n: number, a = 0, b = 0, c = 0): void {
    this.dispatch(pipe, [...buffers, this.sites.uniform(elementwiseParams(n, a, b, c))], grid(n, ELEMENTWISE_THREADS));
  }

  embed(table: GPUBuffer, tokens: readonly number[], position: number, x: GPUBuffer): void {
    this.sites.begin();
    const q = this.gpu.device.queue;
    q.writeBuffer(this.io.ids, 0, new Uint32Array(tokens));
    q.writeBuffer(this.io.rope, 0, ropeTable(this.c, position, tokens.length));
    const H = this.c.hiddenSize;
    this.elementwise(this.pipes.embedding, [table, this.io.ids, x], tokens.length * H, H);
  }

  rmsNorm(x: GPUBuffer, w: GPUBuffer, out: GPUBuffer, rows: number, first = 0): void {
    const u = this.sites.uniform(rmsNormParams(rows, this.c.hiddenSize, this.c.rmsNormEps, first));
    this.dispatch(this.pipes.rmsnorm, [x, w, out, u], [rows]);
  }

  matmul(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, T: number, n: number, k: number, bias?: GPUBuffer): void {
    const u = this.sites.uniform(matmulParams(T, n, k, bias !== undefined));
    const bound = [x, w, bias ?? this.io.none, y, u];
    const target = { features: this.gpu.features, dtype: this.storage, headDim: 0, queries: T, keys: k };
    if (chooseKernel('matmul', MATMUL_VERSIONS, target).version === 'matvec')
      this.dispatch(this.pipes.matvec, bound, [Math.min(n, MATVEC_ROWS_PER_DIM), Math.ceil(n / MATVEC_ROWS_PER_DIM)]);
    else this.dispatch(this.pipes.matmul, bound, [Math.ceil(n / MATMUL_TILE), Math.ceil(T / MATMUL_TILE)]);
  }

  rope(src: GPUBuffer, dst: GPUBuffer, T: number, heads: number, rotate: boolean): void {
    const D = this.c.headDim;
    const interleaved = this.c.ropeLayout === 'interleaved';
    const u = this.sites.uniform(
      ropeParams({ tokens: T, heads, headDim: D, stride: T, offset: 0, rotate, interleaved }),
    );
    this.dispatch(this.pipes.rope, [src, this.io.rope, dst, u], grid((T * heads * D) / 2, ROPE_THREADS));
  }

  headsToTokens(src: GPUBuffer, dst: GPUBuffer, T: number, heads: number): void {
    const D = this.c.headDim;
    this.elementwise(this.pipes.heads, [src, dst], T * heads * D, T, heads, D);
  }

  add(x: GPUBuffer, y: GPUBuffer, n: number): void {
    this.elementwise(this.pipes.add, [x, y], n);
  }

  swiglu(gate: GPUBuffer, up: GPUBuffer, n: number): void {
    this.elementwise(this.pipes.swiglu, [gate, up], n);
  }

  /** Raises layer `layer`'s flag when x is not finite; the read of the logits throws for it (finite-flags-gpu.ts). */
  checkFinite(x: GPUBuffer, values: number, layer: number, position: number): void {
    if (!this.flags) return;
    const u = this.sites.uniform(finiteFlagParams(values, this.flags.word(layer), position));
    this.dispatch(this.pipes.finite, [x, this.flags.logits, u], finiteFlagGroups(values));
  }

  async submit(label: string): Promise<void> {
    const recorded = this.recorded;
    this.recorded = [];
    if (recorded.length) await this.gpu.run(label, (pass) => recorded.forEach((r) => r(pass)));
  }

  forwardScope<T>(work: () => Promise<T>): Promise<T> {
    this.flags?.reset(this.gpu);
    return this.gpu.checked('forward pass', work);
  }

  async read(b: GPUBuffer, n: number, storage = false): Promise<Float32Array> {
    const dtype = storage ? this.storage : 'f32';
    const f = this.flags && b === this.flags.logits && !storage ? this.flags : undefined;
    const bytes = await this.gpu.read(b, f ? (f.vocab + f.layers) * 4 : n * (dtype === 'f16' ? 2 : 4));
    f?.check(new Uint32Array(bytes, f.vocab * 4, f.layers));
    return asFloat32(
      tensor([n], dtype, dtype === 'f16' ? new Uint16Array(bytes, 0, n) : new Float32Array(bytes, 0, n)),
    );
  }

  destroy(): void {
    this.sites.destroy();
  }
}
