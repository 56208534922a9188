// DSA's key selection for a resident layer (attention/layers/dsa-gpu.ts): per block of query tokens, the
// indexer scores every visible key once into a [block, keys] scratch (kernels/dsa-indexer-scores-wgsl.ts),
// then the radix-select passes of kernels/topk-wgsl.ts run over the stored scores (no pass recomputes a
// score) and write the block's rows of the chunk's picks. Blocks are as many tokens as the scratch budget
// holds at the longest context (decoding: one token, one block). Everything is made at construction; a
// block costs uniform writes and one submit. The scratch (scores, selection state) is shared by the layers
// of a device: each block's submit writes and reads it in full (and leaves the histogram empty).
import { UnsupportedError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { indexScoreParams, indexScoresWgsl, SCORE_BLOCK_QUERIES } from '../kernels/dsa-indexer-scores-wgsl.js';
import type { IndexerSlots } from '../kernels/dsa-indexer-project-wgsl.js';
import { TOPK_MAX_PASSES } from '../kernels/topk-cpu.js';
import {
  SELECTION_SCRATCH,
  STATE_WORDS,
  STORED_BLOCK_QUERIES,
  topkParams,
  topkPassWgsl,
} from '../kernels/topk-wgsl.js';
import { DEFAULT_DECIDE, decideGroups, type DecideVersion } from '../kernels/topk-decide-wgsl.js';
import { decidePipeline, selectSplits } from './dsa-select.js';
import { persistentUniform, releaseShared, sharedBuffer, wrapGrid, writeUniform } from './layers/gpu-binds.js';

/** Bytes of stored scores by default (256 MiB: 512 tokens per block at 128K keys), shared by the layers. */
export const SCORE_SCRATCH_BYTES = 256 << 20;

export interface ResidentSelectShape {
  slots: IndexerSlots;
  /** Index-key rows of the cache (its token capacity). */
  maxKeys: number;
  maxChunk: number;
  topk: number;
  scoreBudgetBytes?: number;
  /** The decide step's version (kernels/topk-decide-wgsl.ts; default DEFAULT_DECIDE). */
  decide?: DecideVersion;
}

/** The index buffers the scores read: queries and weights of the chunk, keys (and int8 scales) of the cache. */
export interface IndexBuffers {
  iq: GPUBuffer;
  ik: GPUBuffer;
  iw: GPUBuffer;
  kscale?: GPUBuffer;
}

export interface SelectBlock {
  first: number;
  queries: number;
  /** Keys visible to the block's last token. */
  keys: number;
}

export class ResidentSelection {
  /** Query tokens per block. */
  readonly blockQueries: number;
  private readonly scoreParams: GPUBuffer;
  private readonly topkParams: GPUBuffer;
  private readonly groups: { score: GPUBindGroup; pass: GPUBindGroup; decide: GPUBindGroup };

  private constructor(
    private readonly gpu: GpuContext,
    private readonly kernels: { score: GPUComputePipeline; pass: GPUComputePipeline; decide: GPUComputePipeline },
    private readonly owned: GPUBuffer[],
    index: IndexBuffers,
    picked: GPUBuffer,
    blockQueries: number,
    private readonly decide: DecideVersion,
  ) {
    this.blockQueries = blockQueries;
    this.scoreParams = persistentUniform(gpu, 32);
    this.topkParams = persistentUniform(gpu, 32);
    const [scores, state, counters, hist, cand] = owned;
    const sel = [state, counters, hist, cand, picked];
    const ix = [index.iq, index.ik, index.iw, ...(index.kscale ? [index.kscale] : [])];
    this.groups = {
      score: gpu.bind(kernels.score, [this.scoreParams, ...ix, scores]),
      pass: gpu.bind(kernels.pass, [this.topkParams, scores, ...sel]),
      decide: gpu.bind(kernels.decide, [this.topkParams, ...sel]),
    };
  }

  static async create(
    gpu: GpuContext,
    s: ResidentSelectShape,
    index: IndexBuffers,
    picked: GPUBuffer,
  ): Promise<ResidentSelection> {
    const budget = Math.min(s.scoreBudgetBytes ?? SCORE_SCRATCH_BYTES, gpu.maxBindingBytes);
    const rowBytes = s.maxKeys * 4;
    if (rowBytes > budget)
      throw new UnsupportedError(
        `dsa stores one token's ${s.maxKeys} index scores (${rowBytes} bytes), more than the scratch budget ${budget}`,
      );
    const blockQueries = Math.max(1, Math.min(s.maxChunk, Math.floor(budget / rowBytes)));
    const decide = s.decide ?? DEFAULT_DECIDE;
    const { precision, heads, per } = s.slots;
    const kernels = {
      score: await gpu.pipeline(`dsa-index-scores-${precision}-${heads}-${per}${s.slots.shared ? '-shared' : ''}`, () =>
        indexScoresWgsl(s.slots),
      ),
      pass: await gpu.pipeline('dsa-topk-pass-stored', () => topkPassWgsl('stored')),
      decide: await decidePipeline(gpu, decide),
    };
    const owned: GPUBuffer[] = [];
    try {
      owned.push(await sharedBuffer(gpu, blockQueries * rowBytes, 'dsa stored index scores'));
      // The histogram is zero when fresh, and every finished selection leaves it so.
      for (const [label, words] of SELECTION_SCRATCH)
        owned.push(await sharedBuffer(gpu, blockQueries * words * 4, `dsa select ${label}`));
    } catch (e) {
      owned.forEach((b) => releaseShared(gpu, b));
      throw e;
    }
    return new ResidentSelection(gpu, kernels, owned, index, picked, blockQueries, decide);
  }

  /** The blocks of a chunk of T tokens ranking `middle` keys (bottom-right causal); blocks that see none drop. */
  blocks(T: number, middle: number): SelectBlock[] {
    const out: SelectBlock[] = [];
    for (let first = 0; first < T; first += this.blockQueries) {
      const queries = Math.min(this.blockQueries, T - first);
      const keys = middle - T + first + queries;
      if (keys > 0) out.push({ first, queries, keys });
    }
    return out;
  }

  /**
   * Writes the uniforms of one block (width: the picks' row width, min(topk, middle)) and returns its recorder.
   * One block per submit: the uniforms are rewritten for the next.
   */
  prepare(b: SelectBlock, chunkTokens: number, keyRow0: number, width: number): (pass: GPUComputePassEncoder) => void {
    const gpu = this.gpu;
    const scoreBlocks = Math.ceil(b.queries / SCORE_BLOCK_QUERIES);
    const passBlocks = Math.ceil(b.queries / STORED_BLOCK_QUERIES);
    const shape = { queries: b.queries, keys: b.keys, causal: true, topk: width };
    const scoreSplits = selectSplits(gpu, shape, scoreBlocks);
    const passSplits = selectSplits(gpu, shape, passBlocks);
    if (Math.max(scoreBlocks, passBlocks) > gpu.maxWorkgroupsPerDim)
      throw new UnsupportedError(`a selection block of ${b.queries} tokens exceeds the dispatch grid`);
    writeUniform(
      gpu,
      this.scoreParams,
      indexScoreParams({
        queries: b.queries,
        firstQuery: b.first,
        keys: b.keys,
        chunkTokens,
        keyRow0,
        splits: scoreSplits,
      }),
    );
    writeUniform(
      gpu,
      this.topkParams,
      topkParams({ queries: b.queries, keys: b.keys, causal: true, width, splits: passSplits, outRow0: b.first }),
    );
    // Mode 0 (init) for every token of the block; counters are set by init, candidates written before read.
    // The state is shared by the layers: a clear in the command stream, where a queue write would submit the
    // earlier layers' passes first (16 submissions per decoded token of the 1B model instead of 3).
    gpu.clear(this.owned[1], 0, b.queries * STATE_WORDS * 4);
    const [dx, dy] = wrapGrid(gpu, decideGroups(this.decide, b.queries));
    const { score, pass: passKernel, decide } = this.kernels;
    const g = this.groups;
    return (pass) => {
      pass.setPipeline(score);
      pass.setBindGroup(0, g.score);
      pass.dispatchWorkgroups(scoreBlocks, scoreSplits);
      const runDecide = () => {
        pass.setPipeline(decide);
        pass.setBindGroup(0, g.decide);
        pass.dispatchWorkgroups(dx, dy);
      };
      runDecide();
      for (let i = 0; i < TOPK_MAX_PASSES; i++) {
        pass.setPipeline(passKernel);
        pass.setBindGroup(0, g.pass);
        pass.dispatchWorkgroups(passBlocks, passSplits);
        runDecide();
      }
    };
  }

  destroy(): void {
    this.owned.forEach((b) => releaseShared(this.gpu, b));
    this.scoreParams.destroy();
    this.topkParams.destroy();
  }
}
