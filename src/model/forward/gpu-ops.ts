// ForwardOps on WebGPU: operations are recorded as dispatches and run as one compute pass at each submit.
// Uniforms and bind groups are per call site (runtime/call-sites.ts), renumbered at each chunk's embed, so
// a warm decoding step creates nothing; RoPE's table (float64 angles on the host) goes up with the ids.
// Matmuls run the planner's kernel for each shape (planner.ts planMatmul): tensor-core tiles for chunks of
// rows where the device has f16 subgroup matrices and the weights are f16, a GEMV for one row, the portable
// tiled / matrix-vector kernels elsewhere; every pipeline is compiled at creation.
import { asFloat32, tensor } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { ShapeError } from '../../errors.js';
import { formatChoice, planMatmul, type KernelChoice } from '../../attention/planner.js';
import { matmulVersion, type MatmulVersion } from '../../kernels/versions.js';
import { matmulParams, type WeightStorage } from '../../kernels/matmul-wgsl.js';
import { isGpuQuant, quantColsUnsupported } from '../../weights/quant-gpu.js';
import { embeddingQuantWgsl } from '../../kernels/quant-wgsl.js';
import { rmsNormCheckedParams, rmsNormParams, rmsNormWgsl } from '../../kernels/rmsnorm-wgsl.js';
import { ROPE_QKV_THREADS, ropeQkvParams, ropeQkvThreads, ropeQkvWgsl } from '../../kernels/rope-qkv-wgsl.js';
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
import type { FiniteCheck, ForwardOps, QkvRowsOf } from './ops.js';
import { ropeTable } from './rope-table.js';
import { matmulShapes } from './llama-forward.js';
import { finiteFlagGroups, finiteFlagParams, finiteFlagWgsl } from '../../kernels/finite-flag-wgsl.js';
import type { FiniteFlags } from './finite-flags-gpu.js';

type Pipelines = Record<
  'rmsnorm' | 'rmsnormChecked' | 'rope' | 'embedding' | 'add' | 'swiglu' | 'heads' | 'finite',
  GPUComputePipeline
> & {
  quantEmbedding: Map<WeightStorage, GPUComputePipeline>;
};
type Recorded = (pass: GPUComputePassEncoder) => void;

/** The matmul kernels by name (planner.ts MATMUL_VERSIONS or kernels/versions.ts): `rows` for products of
 * more than one row (prefill chunks), `row` for one row (decode steps, the logits); default auto. */
export interface MatmulAsked {
  rows?: string;
  row?: string;
}

/** The kernel chosen for one product shape, its pipeline compiled before the first forward. */
interface MatmulKernel {
  m: number;
  n: number;
  k: number;
  weights: WeightStorage;
  choice: KernelChoice;
  version: MatmulVersion;
  pipe: GPUComputePipeline;
  /** One-row kernels with the residual add or SwiGLU fused in (where the version has them and the shape needs them). */
  accumulate?: GPUComputePipeline;
  swiglu?: GPUComputePipeline;
}

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
    /** By `${m} ${n} ${k} ${weights}`: every shape of up to `chunk` rows. */
    private readonly matmuls: Map<string, MatmulKernel>,
    private readonly matrixStorage: Map<GPUBuffer, WeightStorage>,
    /** Per-layer non-finite flags, read back with the logits (the NaN policy). */
    private readonly flags?: FiniteFlags,
  ) {
    this.sites = new CallSites(gpu, 'decoder');
  }

  private readonly matmulsRun = new Set<MatmulKernel>();

  static async create(
    gpu: GpuContext,
    c: ModelConfig,
    storage: 'f32' | 'f16',
    io: { ids: GPUBuffer; rope: GPUBuffer; none: GPUBuffer },
    chunk: number,
    asked: MatmulAsked = {},
    matrixStorage = new Map<GPUBuffer, WeightStorage>(),
    flags?: FiniteFlags,
  ): Promise<GpuOps> {
    // The planner's choice for every shape (and weight storage) the run can meet: a forward compiles nothing.
    const matmuls = new Map<string, MatmulKernel>();
    const target = { features: gpu.features, maxWorkgroupStorageBytes: gpu.maxWorkgroupStorageBytes };
    for (const weights of new Set<WeightStorage>([storage, ...matrixStorage.values()]))
      for (const [n, k] of matmulShapes(c))
        for (let m = 1; m <= chunk; m++) {
          if (weights === 'q8_0' && k % 32 !== 0) continue; // no such Q8_0 matrix exists
          if (isGpuQuant(weights) && quantColsUnsupported(weights, k)) continue; // nor such a Q4_K one (say)
          const t = { ...target, dtype: storage, weights, headDim: 0, queries: m, keys: k, columns: n };
          const choice = planMatmul(t, (m === 1 ? asked.row : asked.rows) ?? 'auto');
          const version = matmulVersion(choice.kernel!)!;
          const pipe = await gpu.pipeline(`model-${version.family}-${version.name}-${weights}`, () =>
            version.wgsl(weights, 'f32'),
          );
          const kernel: MatmulKernel = { m, n, k, weights, choice, version, pipe };
          // The fused one-row kernels the forward pass asks for: the residual add after wo and the down
          // projection (n = hidden), and gate/up with SwiGLU (n = intermediate, k = hidden).
          const fused = (e: 'accumulate' | 'swiglu') =>
            gpu.pipeline(`model-${version.family}-${version.name}-${weights}-${e}`, () => version.fused!(weights, e));
          if (m === 1 && version.fused && n === c.hiddenSize) kernel.accumulate = await fused('accumulate');
          if (m === 1 && version.fused && n === c.intermediateSize && k === c.hiddenSize)
            kernel.swiglu = await fused('swiglu');
          matmuls.set(`${m} ${n} ${k} ${weights}`, kernel);
        }
    const pipes: Pipelines = {
      rmsnorm: await gpu.pipeline('model-rmsnorm', () => rmsNormWgsl()),
      rmsnormChecked: await gpu.pipeline('model-rmsnorm-checked', () => rmsNormWgsl(true)),
      rope: await gpu.pipeline(`model-rope-qkv-${storage}`, () => ropeQkvWgsl(storage)),
      embedding: await gpu.pipeline(`model-embedding-${storage}`, () => embeddingWgsl(storage)),
      add: await gpu.pipeline('model-add', addWgsl),
      swiglu: await gpu.pipeline('model-swiglu', swigluWgsl),
      heads: await gpu.pipeline('model-heads', headsToTokensWgsl),
      finite: await gpu.pipeline('model-finite-flag', finiteFlagWgsl),
      quantEmbedding: new Map(),
    };
    // Lookups in a quantised embedding table, per format present (a table [vocab, hidden] of whole blocks).
    for (const q of new Set([...matrixStorage.values()].filter(isGpuQuant)))
      if (!quantColsUnsupported(q, c.hiddenSize))
        pipes.quantEmbedding.set(
          q,
          await gpu.pipeline(`model-embedding-${q}`, () => embeddingQuantWgsl(q, ELEMENTWISE_THREADS)),
        );
    return new GpuOps(gpu, c, storage, pipes, io, matmuls, matrixStorage, flags);
  }

  private dispatch(pipe: GPUComputePipeline, buffers: GPUBuffer[], groups: readonly number[]): void {
    this.recorded.push((pass) => this.sites.dispatch(pass, pipe, buffers, groups));
  }

  private elementwise(pipe: GPUComputePipeline, buffers: GPUBuffer[], n: number, a = 0, b = 0, c = 0): void {
    this.dispatch(pipe, [...buffers, this.sites.uniform(elementwiseParams(n, a, b, c))], grid(n, ELEMENTWISE_THREADS));
  }

  embed(table: GPUBuffer, tokens: readonly number[], position: number, x: GPUBuffer): void {
    this.sites.begin();
    this.gpu.write(this.io.ids, 0, new Uint32Array(tokens));
    this.gpu.write(this.io.rope, 0, ropeTable(this.c, position, tokens.length));
    const H = this.c.hiddenSize;
    const weights = this.matrixStorage.get(table);
    const pipe = weights ? this.pipes.quantEmbedding.get(weights) : this.pipes.embedding;
    if (!pipe) throw new ShapeError(`no embedding lookup over ${weights} tables was compiled`);
    this.elementwise(pipe, [table, this.io.ids, x], tokens.length * H, H, this.c.vocabSize);
  }

  rmsNorm(x: GPUBuffer, w: GPUBuffer, out: GPUBuffer, rows: number, first = 0, check?: FiniteCheck): void {
    const [H, eps] = [this.c.hiddenSize, this.c.rmsNormEps];
    if (check && this.flags && first === 0) {
      const u = this.sites.uniform(rmsNormCheckedParams(rows, H, eps, this.flags.word(check.layer), check.position));
      this.dispatch(this.pipes.rmsnormChecked, [x, w, out, this.flags.logits, u], [rows]);
      return;
    }
    if (check) this.checkFinite(x, (first + rows) * H, check.layer, check.position);
    const u = this.sites.uniform(rmsNormParams(rows, H, eps, first));
    this.dispatch(this.pipes.rmsnorm, [x, w, out, u], [rows]);
  }

  private kernel(w: GPUBuffer, T: number, n: number, k: number): MatmulKernel {
    const weights = this.matrixStorage.get(w) ?? this.storage;
    const kernel = this.matmuls.get(`${T} ${n} ${k} ${weights}`);
    if (!kernel) throw new ShapeError(`no matmul kernel was planned for ${T} x ${n} x ${k} over ${weights} weights`);
    this.matmulsRun.add(kernel);
    return kernel;
  }

  matmul(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, T: number, n: number, k: number, bias?: GPUBuffer): void {
    const kernel = this.kernel(w, T, n, k);
    const u = this.sites.uniform(matmulParams(T, n, k, bias !== undefined));
    this.dispatch(kernel.pipe, [x, w, bias ?? this.io.none, y, u], kernel.version.grid(T, n));
  }

  matmulAdd(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, T: number, n: number, k: number, scratch: GPUBuffer): void {
    const kernel = this.kernel(w, T, n, k);
    if (kernel.accumulate) {
      const u = this.sites.uniform(matmulParams(T, n, k, false));
      this.dispatch(kernel.accumulate, [x, w, this.io.none, y, u], kernel.version.grid(T, n));
    } else {
      this.matmul(x, w, scratch, T, n, k);
      this.add(y, scratch, T * n);
    }
  }

  gateUp(
    x: GPUBuffer,
    wGate: GPUBuffer,
    wUp: GPUBuffer,
    gate: GPUBuffer,
    up: GPUBuffer,
    T: number,
    n: number,
    k: number,
  ) {
    const kernel = this.kernel(wGate, T, n, k);
    const same = (this.matrixStorage.get(wUp) ?? this.storage) === kernel.weights;
    if (kernel.swiglu && same) {
      const u = this.sites.uniform(matmulParams(T, n, k, false));
      this.dispatch(kernel.swiglu, [x, wGate, wUp, gate, u], kernel.version.grid(T, n));
    } else {
      this.matmul(x, wGate, gate, T, n, k);
      this.matmul(x, wUp, up, T, n, k);
      this.swiglu(gate, up, T * n);
    }
  }

  /** The matmul kernels that ran (or, before a forward, those planned for full chunks and one row), one line
   * per choice with the (outputs x inputs) shapes it ran: `generate --stats`, `bench model`. */
  matmulPlans(): string[] {
    const chunk = Math.max(...[...this.matmuls.values()].map((e) => e.m));
    const kernels = this.matmulsRun.size
      ? [...this.matmulsRun]
      : [...this.matmuls.values()].filter((e) => e.m === 1 || e.m === chunk);
    const lines = new Map<string, string[]>();
    for (const e of kernels) {
      const op = `matmul, ${e.m === 1 ? '1 row' : 'rows'}${e.weights === 'f16' || e.weights === 'f32' ? '' : `, ${e.weights.toUpperCase()} weights`}`;
      const line = formatChoice({ ...e.choice, op });
      const shapes = lines.get(line) ?? [];
      if (!shapes.includes(`${e.n}x${e.k}`)) shapes.push(`${e.n}x${e.k}`);
      lines.set(line, shapes);
    }
    return [...lines].map(([line, shapes]) => `${line} [outputs x inputs: ${shapes.join(', ')}]`);
  }

  ropeQkv(rows: QkvRowsOf<GPUBuffer>, qh: GPUBuffer, kh: GPUBuffer, vh: GPUBuffer, T: number, rotate: boolean): void {
    const { heads, kvHeads, headDim } = this.c;
    const interleaved = this.c.ropeLayout === 'interleaved';
    const stacked = 'fused' in rows;
    const u = this.sites.uniform(ropeQkvParams({ tokens: T, heads, kvHeads, headDim, rotate, interleaved, stacked }));
    const src = stacked ? [rows.fused, rows.fused, rows.fused] : [rows.q, rows.k, rows.v];
    const threads = ropeQkvThreads(T, heads, kvHeads, headDim);
    this.dispatch(this.pipes.rope, [...src, this.io.rope, qh, kh, vh, u], grid(threads, ROPE_QKV_THREADS));
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
    if (recorded.length) await this.gpu.run(label, (pass) => recorded.forEach((r) => r(pass)), true);
  }

  forwardScope<T>(work: () => Promise<T>): Promise<T> {
    this.flags?.reset(this.gpu);
    return this.gpu.checked('forward pass', () => this.gpu.batched(work));
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
