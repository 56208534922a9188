// The indexer's warm-up loss and gradient on WebGPU, the whole sequence on the GPU in f32 with one read back:
// the projections W_q, W_k, W_proj (one GEMM), the key LayerNorm and RoPE (kernels/indexer-train-wgsl.ts);
// per block of queries the target p from the frozen layer's q and k when the sequence carries them (else p
// uploaded from seq.target), the [chunk, L] scores, softmax, KL, dI and the gradients into the index queries,
// weights and keys (kernels/indexer-grad-wgsl.ts, O(L^2 H_I D_I)), the top-k mass; then the backward through
// RoPE, LayerNorm and the projections (a second GEMM, dW = dY^T h) and column sums for gamma, beta, the loss
// and the mass. The host only uploads h and the parameters (f32) and adds the read-back gradient into its
// float64 vector: until this, the host's float64 projections, the per-block score readback with a sort per
// query for the mass, and the CPU target dominated the step (docs/DSA-MASS.md).
// Both backends implement IndexerGradient, so the trainer takes either (train-indexer --backend).
import { OutOfMemoryError, ShapeError, UnsupportedError } from '../errors.js';
import {
  GRAD_THREADS,
  indexerGradBackWgsl,
  indexerGradKeysWgsl,
  indexerGradParams,
  indexerGradRowWgsl,
  indexerGradWorkgroupBytes,
} from '../kernels/indexer-grad-wgsl.js';
import {
  indexerColumnSumWgsl,
  indexerMatmulWgsl,
  indexerPrepBackWgsl,
  indexerPrepWgsl,
  TRAIN_THREADS,
  trainParams,
} from '../kernels/indexer-train-wgsl.js';
import { indexerMassWgsl, indexerTargetWgsl, indexerTargetWorkgroupBytes } from '../kernels/indexer-target-wgsl.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import type { TargetAttention } from './attention-target.js';
import { indexerLossGrad, type IndexerLoss, type IndexerSequence } from './indexer-grad.js';
import { type IndexerGeometry, paramLayout } from './indexer-params.js';

/** One sequence's loss, and its gradient added into `grad` (scaled by gradScale) when given. */
export interface IndexerGradient {
  readonly name: string;
  lossGrad(
    g: IndexerGeometry,
    params: Float64Array,
    seq: IndexerSequence,
    grad?: Float64Array,
    gradScale?: number,
  ): Promise<IndexerLoss>;
  destroy(): void;
}

/** Queries per block when the sequence names none. */
export const GPU_CHUNK = 256;

export const cpuIndexerGradient: IndexerGradient = {
  name: 'CPU (float64)',
  lossGrad: async (g, params, seq, grad, gradScale) => indexerLossGrad(g, params, seq, grad, gradScale),
  destroy() {},
};

/** The backend for a device: WebGPU's when it has a GPU, else the CPU's. */
export function indexerGradientFor(device: Device): IndexerGradient {
  return device.gpu ? new GpuIndexerGradient(device.gpu) : cpuIndexerGradient;
}

type BufferName =
  | 'h'
  | 'W'
  | 'ln'
  | 'rope'
  | 'Y'
  | 'q'
  | 'w'
  | 'k'
  | 'p'
  | 'scores'
  | 'dI'
  | 'loss'
  | 'mass'
  | 'dq'
  | 'dw'
  | 'G'
  | 'dk'
  | 'dY'
  | 'dln'
  | 'result'
  | 'aq'
  | 'ak';
type Buffers = Record<BufferName, GPUBuffer>;

export class GpuIndexerGradient implements IndexerGradient {
  readonly name: string;
  private buffers?: { key: string; b: Partial<Buffers> };
  private ropeFor?: { g: IndexerGeometry; L: number; table: Float32Array<ArrayBuffer> };
  /** Tests set this: scratch and outputs filled with NaN before each run, so an unwritten element shows. */
  poison = false;

  constructor(private readonly gpu: GpuContext) {
    this.name = `WebGPU (${gpu.adapterName}, f32)`;
  }

  async lossGrad(
    g: IndexerGeometry,
    params: Float64Array,
    seq: IndexerSequence,
    grad?: Float64Array,
    gradScale = 1,
  ): Promise<IndexerLoss> {
    const { L, h } = seq;
    const [H, HI, DI] = [g.hidden, g.heads, g.dim];
    const R = HI * DI + DI + HI;
    const att = seq.attention;
    // 256 queries a block unless asked (the CPU's 64 would leave most of a large GPU idle); the result does not
    // depend on it.
    const chunk = Math.min(seq.chunk ?? GPU_CHUNK, L);
    if (!Number.isInteger(L) || L < 1 || h.length < L * H)
      throw new ShapeError(`indexer sequence: L ${L} with ${h.length} values of h (hidden ${H})`);
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new ShapeError(`indexer chunk must be a positive integer, got ${chunk}`);
    if (att && (att.q.length < att.heads * L * att.headDim || att.k.length < att.kvHeads * L * att.headDim))
      throw new ShapeError(`indexer target: q or k of the frozen layer holds fewer than L ${L} positions`);
    const shape = { heads: HI, dim: DI };
    const wgBytes = Math.max(indexerGradWorkgroupBytes(shape), att ? indexerTargetWorkgroupBytes(att) : 0);
    if (wgBytes > this.gpu.maxWorkgroupStorageBytes)
      throw new UnsupportedError(
        `indexer gradient on WebGPU: H_I ${HI} x D_I ${DI}${att ? ` and the target's ${att.heads} x ${att.headDim}` : ''} ` +
          `needs ${wgBytes} bytes of workgroup memory, the device has ${this.gpu.maxWorkgroupStorageBytes} (use --backend cpu)`,
      );
    if (Math.ceil(L / 16) > this.gpu.maxWorkgroupsPerDim)
      throw new UnsupportedError(
        `indexer gradient on WebGPU: L ${L} needs ${Math.ceil(L / 16)} workgroups in one dimension, ` +
          `the device allows ${this.gpu.maxWorkgroupsPerDim}`,
      );
    const lay = paramLayout(g);
    const b = await this.ensure(g, L, chunk, att);
    const pipes = await this.pipelines(g, att);
    const dev = this.gpu.device;
    dev.queue.writeBuffer(b.h, 0, h as Float32Array<ArrayBuffer>, 0, L * H);
    dev.queue.writeBuffer(b.W, 0, Float32Array.from(params.subarray(0, lay.gamma)));
    dev.queue.writeBuffer(b.ln, 0, Float32Array.from(params.subarray(lay.gamma, lay.size)));
    dev.queue.writeBuffer(b.rope, 0, this.ropeTable(g, L));
    if (att) {
      dev.queue.writeBuffer(b.aq, 0, att.q as Float32Array<ArrayBuffer>, 0, att.heads * L * att.headDim);
      dev.queue.writeBuffer(b.ak, 0, att.k as Float32Array<ArrayBuffer>, 0, att.kvHeads * L * att.headDim);
    }
    if (this.poison)
      for (const x of [
        'Y',
        'q',
        'w',
        'k',
        'p',
        'scores',
        'dI',
        'loss',
        'mass',
        'dq',
        'dw',
        'G',
        'dk',
        'dY',
        'dln',
        'result',
      ])
        poisonBuffer(dev, b[x as BufferName]);
    const queries = L;
    const topk = seq.topk;
    const out = R * H; // result: [dW (R x H) | dgamma, dbeta (2 D_I) | loss | mass]
    const uniforms: GPUBuffer[] = [];
    const u = (words: number[], last?: number) => {
      const x = this.gpu.uniform(trainParams(words, last), 'indexer-train');
      uniforms.push(x);
      return x;
    };
    const bind = (pipe: GPUComputePipeline, bufs: GPUBuffer[]) => this.gpu.bind(pipe, bufs);
    const tokenGroups = Math.ceil(L / TRAIN_THREADS);
    try {
      await this.gpu.checked('indexer-grad', async () => {
        await this.gpu.encode('indexer-grad clear', (enc) => enc.clearBuffer(b.dk));
        await this.gpu.run('indexer-grad prep', (pass) => {
          pass.setPipeline(pipes.proj);
          pass.setBindGroup(0, bind(pipes.proj, [u([L, R, H]), b.h, b.W, b.Y]));
          pass.dispatchWorkgroups(Math.ceil(R / 16), Math.ceil(L / 16));
          pass.setPipeline(pipes.prep);
          pass.setBindGroup(0, bind(pipes.prep, [u([L]), b.Y, b.ln, b.rope, b.q, b.w, b.k]));
          pass.dispatchWorkgroups(tokenGroups);
        });
        for (let t0 = 0; t0 < L; t0 += chunk) {
          const t1 = Math.min(L, t0 + chunk);
          const rows = t1 - t0;
          if (!att) dev.queue.writeBuffer(b.p, 0, Float32Array.from(seq.target(t0, t1).subarray(0, rows * L)));
          const groups = Math.ceil((t1 * DI) / GRAD_THREADS);
          const nx = Math.min(groups, this.gpu.maxWorkgroupsPerDim);
          const ny = Math.ceil(groups / nx);
          const ug = this.gpu.uniform(
            indexerGradParams({ t0, rows, L, nx, dscale: gradScale / queries }),
            'indexer-grad',
          );
          uniforms.push(ug);
          const ub = u([t0, rows, L, topk ?? 0]);
          await this.gpu.run('indexer-grad block', (pass) => {
            if (att) {
              pass.setPipeline(pipes.target!);
              pass.setBindGroup(0, bind(pipes.target!, [ub, b.aq, b.ak, b.p]));
              pass.dispatchWorkgroups(rows);
            }
            pass.setPipeline(pipes.row);
            pass.setBindGroup(0, bind(pipes.row, [ug, b.q, b.w, b.k, b.p, b.scores, b.dI, b.loss]));
            pass.dispatchWorkgroups(rows);
            if (topk !== undefined) {
              pass.setPipeline(pipes.mass);
              pass.setBindGroup(0, bind(pipes.mass, [ub, b.scores, b.p, b.mass]));
              pass.dispatchWorkgroups(rows);
            }
            if (!grad) return;
            pass.setPipeline(pipes.back);
            pass.setBindGroup(0, bind(pipes.back, [ug, b.q, b.w, b.k, b.dI, b.dq, b.dw, b.G]));
            pass.dispatchWorkgroups(rows);
            pass.setPipeline(pipes.keys);
            pass.setBindGroup(0, bind(pipes.keys, [ug, b.q, b.G, b.dk]));
            pass.dispatchWorkgroups(nx, ny);
          });
        }
        await this.gpu.run('indexer-grad finish', (pass) => {
          if (grad) {
            pass.setPipeline(pipes.prepBack);
            pass.setBindGroup(0, bind(pipes.prepBack, [u([L]), b.Y, b.ln, b.rope, b.dq, b.dw, b.dk, b.dY, b.dln]));
            pass.dispatchWorkgroups(tokenGroups);
            pass.setPipeline(pipes.back2);
            pass.setBindGroup(0, bind(pipes.back2, [u([R, H, L]), b.dY, b.h, b.result]));
            pass.dispatchWorkgroups(Math.ceil(H / 16), Math.ceil(R / 16));
            pass.setPipeline(pipes.colsum);
            pass.setBindGroup(0, bind(pipes.colsum, [u([L, 2 * DI, out]), b.dln, b.result]));
            pass.dispatchWorkgroups(2 * DI);
          }
          pass.setPipeline(pipes.colsum);
          pass.setBindGroup(0, bind(pipes.colsum, [u([L, 1, out + 2 * DI]), b.loss, b.result]));
          pass.dispatchWorkgroups(1);
          if (topk !== undefined) {
            pass.setBindGroup(0, bind(pipes.colsum, [u([L, 1, out + 2 * DI + 1]), b.mass, b.result]));
            pass.dispatchWorkgroups(1);
          }
        });
      });
      const res = new Float32Array(await this.gpu.read(b.result, (out + 2 * DI + 2) * 4));
      if (grad) {
        for (let i = 0; i < out; i++) grad[lay.wq + i] += res[i];
        for (let d = 0; d < 2 * DI; d++) grad[lay.gamma + d] += res[out + d];
      }
      const massCount = topk !== undefined ? Math.max(0, L - topk) : 0;
      const massSum = massCount > 0 ? res[out + 2 * DI + 1] : 0;
      return { loss: res[out + 2 * DI] / queries, queries, massSum, massCount };
    } finally {
      for (const x of uniforms) x.destroy();
    }
  }

  /** cos and sin of every (position, pair) for positions 0..L-1, float64 rounded once; kept while (g, L) repeats. */
  private ropeTable(g: IndexerGeometry, L: number): Float32Array<ArrayBuffer> {
    if (this.ropeFor?.g === g && this.ropeFor.L === L) return this.ropeFor.table;
    const P = g.pairs.length;
    const table = new Float32Array(Math.max(1, L * P) * 2);
    for (let t = 0; t < L; t++)
      for (let i = 0; i < P; i++) {
        table[(t * P + i) * 2] = Math.cos(t * g.invFreq[i]);
        table[(t * P + i) * 2 + 1] = Math.sin(t * g.invFreq[i]);
      }
    this.ropeFor = { g, L, table };
    return table;
  }

  private async pipelines(g: IndexerGeometry, att?: TargetAttention) {
    const [HI, DI] = [g.heads, g.dim];
    const shape = { heads: HI, dim: DI };
    const prep = { ...shape, pairs: g.pairs, weightScale: g.weightScale };
    const prepKey = `${HI}x${DI}:${g.pairs.map((p) => p.join('.')).join(',')}:${g.weightScale}`;
    const p = (key: string, code: () => string) => this.gpu.pipeline(key, code);
    const [row, back, keys, proj, back2, prepP, prepBack, colsum, mass, target] = await Promise.all([
      p(`indexer-grad-row:${HI}x${DI}`, () => indexerGradRowWgsl(shape)),
      p(`indexer-grad-back:${HI}x${DI}`, () => indexerGradBackWgsl(shape)),
      p(`indexer-grad-keys:${HI}x${DI}`, () => indexerGradKeysWgsl(shape)),
      p('indexer-train-matmul:proj', () => indexerMatmulWgsl('proj')),
      p('indexer-train-matmul:back', () => indexerMatmulWgsl('back')),
      p(`indexer-train-prep:${prepKey}`, () => indexerPrepWgsl(prep)),
      p(`indexer-train-prep-back:${prepKey}`, () => indexerPrepBackWgsl(prep)),
      p('indexer-train-colsum', () => indexerColumnSumWgsl()),
      p('indexer-train-mass', () => indexerMassWgsl()),
      att
        ? p(`indexer-train-target:${att.heads}x${att.kvHeads}x${att.headDim}`, () => indexerTargetWgsl(att))
        : undefined,
    ]);
    return { row, back, keys, proj, back2, prep: prepP, prepBack, colsum, mass, target };
  }

  /** Buffers for (L, chunk, geometry, target shape), kept while the shape repeats (every step of a run). */
  private async ensure(g: IndexerGeometry, L: number, chunk: number, att?: TargetAttention): Promise<Buffers> {
    const [H, HI, DI] = [g.hidden, g.heads, g.dim];
    const R = HI * DI + DI + HI;
    const key = `${L}:${chunk}:${H}:${HI}:${DI}:${att ? `${att.heads}x${att.kvHeads}x${att.headDim}` : '-'}`;
    if (this.buffers?.key === key) return this.buffers.b as Buffers;
    this.releaseBuffers();
    const sizes: Partial<Record<BufferName, number>> = {
      h: L * H,
      W: R * H,
      ln: 2 * DI,
      rope: L * g.pairs.length * 2,
      Y: L * R,
      q: L * HI * DI,
      w: L * HI,
      k: L * DI,
      p: chunk * L,
      scores: chunk * L,
      dI: chunk * L,
      loss: L,
      mass: L,
      dq: L * HI * DI,
      dw: L * HI,
      G: chunk * HI * L,
      dk: L * DI,
      dY: L * R,
      dln: L * 2 * DI,
      result: R * H + 2 * DI + 2,
      ...(att ? { aq: att.heads * L * att.headDim, ak: att.kvHeads * L * att.headDim } : {}),
    };
    // Checked before allocating anything.
    const largest = Math.max(...Object.values(sizes)) * 4;
    if (largest > this.gpu.maxBindingBytes)
      throw new OutOfMemoryError(
        `indexer gradient: a ${largest}-byte scratch (chunk ${chunk}, H_I ${HI}, L ${L}) exceeds this device's ` +
          `largest binding (${this.gpu.maxBindingBytes} bytes); use a smaller chunk or context`,
        largest,
        this.gpu.maxBindingBytes,
      );
    const b: Partial<Buffers> = {};
    this.buffers = { key, b };
    try {
      for (const [name, n] of Object.entries(sizes))
        b[name as BufferName] = await this.gpu.createBuffer(n * 4, `indexer-grad ${name}`);
    } catch (e) {
      this.releaseBuffers();
      throw e;
    }
    return b as Buffers;
  }

  private releaseBuffers(): void {
    if (!this.buffers) return;
    for (const x of Object.values(this.buffers.b)) this.gpu.release(x);
    this.buffers = undefined;
  }

  destroy(): void {
    this.releaseBuffers();
  }
}

function poisonBuffer(dev: GPUDevice, buffer: GPUBuffer): void {
  dev.queue.writeBuffer(buffer, 0, new Float32Array(buffer.size / 4).fill(Number.NaN));
}
