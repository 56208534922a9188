// ForwardOps on the CPU: every operation runs at once on host arrays (submit has nothing to wait for).
// The exact twin of gpu-ops.ts that CI checks; activations are f32 throughout.
import { ShapeError } from '../../errors.js';
import { checkFiniteActivations } from '../load/finite.js';
import { matmulRowsCpu } from '../../kernels/matmul-cpu.js';
import { rmsNormCpu } from '../../kernels/rmsnorm-cpu.js';
import { ropeCpu } from '../../kernels/rope-cpu.js';
import { swigluCpu } from '../../kernels/elementwise-cpu.js';
import type { WeightMatrix } from '../../weights/weight-matrix.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { ModelConfig } from '../types.js';
import type { FiniteCheck, ForwardOps, QkvRowsOf } from './ops.js';

export class CpuOps implements ForwardOps<Float32Array, WeightMatrix, Float32Array> {
  private readonly invFreq: Float64Array;
  private readonly ropeFactor: number;
  private position = 0;

  checkFinite(x: Float32Array, values: number, layer: number, position: number): void {
    checkFiniteActivations(x.subarray(0, values), layer, position);
  }

  constructor(private readonly c: ModelConfig) {
    this.invFreq = ropeInverseFrequencies(c);
    this.ropeFactor = ropeAttentionFactor(c);
  }

  embed(table: WeightMatrix, tokens: readonly number[], position: number, x: Float32Array): void {
    this.position = position;
    tokens.forEach((id, t) => x.set(table.row(id), t * this.c.hiddenSize));
  }

  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, first = 0, check?: FiniteCheck): void {
    if (check)
      this.checkFinite(x.subarray(first * this.c.hiddenSize), rows * this.c.hiddenSize, check.layer, check.position);
    const H = this.c.hiddenSize;
    rmsNormCpu(x.subarray(first * H, (first + rows) * H), rows, H, w, this.c.rmsNormEps, out);
  }

  matmul(
    x: Float32Array,
    w: WeightMatrix,
    y: Float32Array,
    T: number,
    _n: number,
    _k: number,
    bias?: Float32Array,
  ): void {
    matmulRowsCpu(x, T, w, y, bias);
  }

  matmulAdd(x: Float32Array, w: WeightMatrix, y: Float32Array, T: number, n: number, k: number, scratch: Float32Array) {
    this.matmul(x, w, scratch, T, n, k);
    this.add(y, scratch, T * n);
  }

  gateUp(
    x: Float32Array,
    wGate: WeightMatrix,
    wUp: WeightMatrix,
    gate: Float32Array,
    up: Float32Array,
    T: number,
    n: number,
    k: number,
  ) {
    this.matmul(x, wGate, gate, T, n, k);
    this.matmul(x, wUp, up, T, n, k);
    this.swiglu(gate, up, T * n);
  }

  ropeQkv(
    rows: QkvRowsOf<Float32Array>,
    qh: Float32Array,
    kh: Float32Array,
    vh: Float32Array,
    T: number,
    rotate: boolean,
  ): void {
    if ('fused' in rows) throw new ShapeError('the CPU decoder runs the three projections apart, not stacked');
    const { q, k, v } = rows;
    this.rope(q, qh, T, this.c.heads, rotate);
    this.rope(k, kh, T, this.c.kvHeads, rotate);
    this.rope(v, vh, T, this.c.kvHeads, false);
  }

  /** RoPE in place on the token-major rows (src is not read again), then into head-major dst. */
  private rope(src: Float32Array, dst: Float32Array, T: number, heads: number, rotate: boolean): void {
    const D = this.c.headDim;
    if (rotate) ropeCpu(src, T, heads, D, this.position, this.invFreq, this.c.ropeLayout, this.ropeFactor);
    for (let t = 0; t < T; t++)
      for (let h = 0; h < heads; h++)
        dst.set(src.subarray((t * heads + h) * D, (t * heads + h + 1) * D), (h * T + t) * D);
  }

  headsToTokens(src: Float32Array, dst: Float32Array, T: number, heads: number): void {
    const D = this.c.headDim;
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < T; t++) dst.set(src.subarray((h * T + t) * D, (h * T + t + 1) * D), (t * heads + h) * D);
  }

  add(x: Float32Array, y: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) x[i] += y[i];
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number): void {
    swigluCpu(gate, up, n);
  }

  async submit(): Promise<void> {}

  forwardScope<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  async read(b: Float32Array, n: number): Promise<Float32Array> {
    return b.slice(0, n);
  }
}
