// The indexer's warm-up loss and gradient with its expensive part on WebGPU (kernels/indexer-grad-wgsl.ts):
// the [chunk, L] score blocks, their softmax over visible keys, the KL, dI and the gradients into the index
// queries (per head), the weights and the index keys, all O(L^2 H_I D_I), run on the GPU in f32. The cheap
// O(L x hidden x H_I D_I) parts stay on the host in float64, shared with the CPU backend (train/indexer-grad.ts):
// the projections W_q, W_k, W_proj, the key LayerNorm, RoPE, and their backward. The top-k mass (a report,
// not a gradient) is measured on the host from each block's scores, read back when `topk` is asked for.
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
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import {
  indexerLossGrad,
  indexKeys,
  indexKeysBack,
  massOfTopK,
  project,
  projectBack,
  rope,
  type IndexerLoss,
  type IndexerSequence,
} from './indexer-grad.js';
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

interface Buffers {
  key: string;
  q: GPUBuffer;
  w: GPUBuffer;
  k: GPUBuffer;
  p: GPUBuffer;
  scores: GPUBuffer;
  dI: GPUBuffer;
  loss: GPUBuffer;
  dq: GPUBuffer;
  dw: GPUBuffer;
  G: GPUBuffer;
  dk: GPUBuffer;
}

export class GpuIndexerGradient implements IndexerGradient {
  readonly name: string;
  private buffers?: Buffers;
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
    // 256 queries a block unless asked (the CPU's 64 would leave most of a large GPU idle); the result does not
    // depend on it.
    const chunk = Math.min(seq.chunk ?? GPU_CHUNK, L);
    if (!Number.isInteger(L) || L < 1 || h.length < L * H)
      throw new ShapeError(`indexer sequence: L ${L} with ${h.length} values of h (hidden ${H})`);
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new ShapeError(`indexer chunk must be a positive integer, got ${chunk}`);
    const shape = { heads: HI, dim: DI };
    const wgBytes = indexerGradWorkgroupBytes(shape);
    if (wgBytes > this.gpu.maxWorkgroupStorageBytes)
      throw new UnsupportedError(
        `indexer gradient on WebGPU: H_I ${HI} x D_I ${DI} needs ${wgBytes} bytes of workgroup memory, ` +
          `the device has ${this.gpu.maxWorkgroupStorageBytes} (use --backend cpu)`,
      );
    const lay = paramLayout(g);
    const keys = indexKeys(g, params, h, L);
    // Index queries (post-RoPE) and weights of every token, float64 on the host, rounded once to f32.
    const q64 = new Float64Array(L * HI * DI);
    const w64 = new Float64Array(L * HI);
    for (let t = 0; t < L; t++) {
      project(params, lay.wq, HI * DI, h, t * H, H, q64, t * HI * DI);
      for (let j = 0; j < HI; j++) rope(g, q64, (t * HI + j) * DI, t, 1);
      project(params, lay.proj, HI, h, t * H, H, w64, t * HI);
      for (let j = 0; j < HI; j++) w64[t * HI + j] *= g.weightScale;
    }
    const b = await this.ensure(L, chunk, HI, DI);
    const dev = this.gpu.device;
    dev.queue.writeBuffer(b.q, 0, Float32Array.from(q64));
    dev.queue.writeBuffer(b.w, 0, Float32Array.from(w64));
    dev.queue.writeBuffer(b.k, 0, Float32Array.from(keys.kI));
    if (this.poison) for (const x of [b.scores, b.dI, b.loss, b.dq, b.dw, b.G, b.dk]) poisonBuffer(dev, x);
    const pipes = await Promise.all([
      this.gpu.pipeline(`indexer-grad-row:${HI}x${DI}`, () => indexerGradRowWgsl(shape)),
      this.gpu.pipeline(`indexer-grad-back:${HI}x${DI}`, () => indexerGradBackWgsl(shape)),
      this.gpu.pipeline(`indexer-grad-keys:${HI}x${DI}`, () => indexerGradKeysWgsl(shape)),
    ]);
    const [row, back, keyPass] = pipes;
    const queries = L;
    let [massSum, massCount] = [0, 0];
    await this.gpu.encode('indexer-grad clear', (enc) => enc.clearBuffer(b.dk));
    for (let t0 = 0; t0 < L; t0 += chunk) {
      const t1 = Math.min(L, t0 + chunk);
      const rows = t1 - t0;
      const p = seq.target(t0, t1);
      dev.queue.writeBuffer(b.p, 0, Float32Array.from(p.subarray(0, rows * L)));
      const threads = t1 * DI;
      const groups = Math.ceil(threads / GRAD_THREADS);
      const nx = Math.min(groups, this.gpu.maxWorkgroupsPerDim);
      const ny = Math.ceil(groups / nx);
      const u = this.gpu.uniform(indexerGradParams({ t0, rows, L, nx, dscale: gradScale / queries }), 'indexer-grad');
      await this.gpu.run('indexer-grad', (pass) => {
        pass.setPipeline(row);
        pass.setBindGroup(0, this.gpu.bind(row, [u, b.q, b.w, b.k, b.p, b.scores, b.dI, b.loss]));
        pass.dispatchWorkgroups(rows);
        if (!grad) return;
        pass.setPipeline(back);
        pass.setBindGroup(0, this.gpu.bind(back, [u, b.q, b.w, b.k, b.dI, b.dq, b.dw, b.G]));
        pass.dispatchWorkgroups(rows);
        pass.setPipeline(keyPass);
        pass.setBindGroup(0, this.gpu.bind(keyPass, [u, b.q, b.G, b.dk]));
        pass.dispatchWorkgroups(nx, ny);
      });
      u.destroy();
      if (seq.topk !== undefined && t1 > seq.topk) {
        const score = new Float64Array(new Float32Array(await this.gpu.read(b.scores, rows * L * 4)));
        for (let t = Math.max(t0, seq.topk); t < t1; t++) {
          const r = t - t0;
          massSum += massOfTopK(score.subarray(r * L), p, r * L, t + 1, seq.topk);
          massCount++;
        }
      }
    }
    const lossRows = new Float32Array(await this.gpu.read(b.loss, L * 4));
    let loss = 0;
    for (let t = 0; t < L; t++) loss += lossRows[t] / queries;
    if (grad) await this.backToParams(g, params, seq, keys, b, grad);
    return { loss, queries, massSum, massCount };
  }

  /** The host's float64 chain from dq, dw, dk_I (read back) into the projections, LayerNorm and RoPE. */
  private async backToParams(
    g: IndexerGeometry,
    params: Float64Array,
    seq: IndexerSequence,
    keys: ReturnType<typeof indexKeys>,
    b: Buffers,
    grad: Float64Array,
  ): Promise<void> {
    const { L, h } = seq;
    const [H, HI, DI] = [g.hidden, g.heads, g.dim];
    const lay = paramLayout(g);
    const dq = new Float64Array(new Float32Array(await this.gpu.read(b.dq, L * HI * DI * 4)));
    const dw = new Float64Array(new Float32Array(await this.gpu.read(b.dw, L * HI * 4)));
    const dk = new Float64Array(new Float32Array(await this.gpu.read(b.dk, L * DI * 4)));
    for (let t = 0; t < L; t++) {
      for (let j = 0; j < HI; j++) {
        rope(g, dq, (t * HI + j) * DI, t, -1);
        dw[t * HI + j] *= g.weightScale;
      }
      projectBack(grad, lay.wq, HI * DI, h, t * H, H, dq, t * HI * DI);
      projectBack(grad, lay.proj, HI, h, t * H, H, dw, t * HI);
    }
    indexKeysBack(g, params, h, L, keys, dk, grad);
  }

  /** Buffers for (L, chunk, H_I, D_I), kept while the shape repeats (every step of a run). */
  private async ensure(L: number, chunk: number, HI: number, DI: number): Promise<Buffers> {
    const key = `${L}:${chunk}:${HI}:${DI}`;
    if (this.buffers?.key === key) return this.buffers;
    this.releaseBuffers();
    const sizes = {
      q: L * HI * DI,
      w: L * HI,
      k: L * DI,
      p: chunk * L,
      scores: chunk * L,
      dI: chunk * L,
      loss: L,
      dq: L * HI * DI,
      dw: L * HI,
      G: chunk * HI * L,
      dk: L * DI,
    };
    // Checked before allocating anything: the largest binding is G, [chunk, H_I, L].
    const largest = Math.max(...Object.values(sizes)) * 4;
    if (largest > this.gpu.maxBindingBytes)
      throw new OutOfMemoryError(
        `indexer gradient: a ${largest}-byte scratch (chunk ${chunk} x H_I ${HI} x L ${L}) exceeds this device's ` +
          `largest binding (${this.gpu.maxBindingBytes} bytes); use a smaller chunk or context`,
        largest,
        this.gpu.maxBindingBytes,
      );
    const made: GPUBuffer[] = [];
    const entries: Array<[string, GPUBuffer]> = [];
    try {
      for (const [name, n] of Object.entries(sizes)) {
        const x = await this.gpu.createBuffer(n * 4, `indexer-grad ${name}`);
        made.push(x);
        entries.push([name, x]);
      }
    } catch (e) {
      for (const x of made) this.gpu.release(x);
      throw e;
    }
    const b = { key, ...Object.fromEntries(entries) } as Buffers;
    this.buffers = b;
    return b;
  }

  private releaseBuffers(): void {
    if (!this.buffers) return;
    const { key: _, ...bufs } = this.buffers;
    for (const x of Object.values(bufs)) this.gpu.release(x);
    this.buffers = undefined;
  }

  destroy(): void {
    this.releaseBuffers();
  }
}

function poisonBuffer(dev: GPUDevice, buffer: GPUBuffer): void {
  dev.queue.writeBuffer(buffer, 0, new Float32Array(buffer.size / 4).fill(Number.NaN));
}
