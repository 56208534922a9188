// A CCA-Attention layer resident on WebGPU (Chen et al., ICML 2025; the CPU truth is attention/cca-cache.ts):
// the compressed cache (the pooled cores of fully past groups and a ring of the last w + g - 1 raw tokens,
// one buffer per K and V laid out [Hkv, cores + ring, D]) stays on the device. Each chunk (a prefill chunk of
// any size or one decoded token) is one compute pass: pool the groups whose last token is in the chunk
// (pass 1, that token's query, raw rows read from ring and chunk in place), attend over cores + ring + chunk
// (pass 2, portable or subgroup-matrix), then write the chunk's last tokens into the ring. A decoded token
// is appended first and attends by split-KV decoding over the cores and ring rows it sees
// (kernels/cca-decode-wgsl.ts): pass 2 would give each head one workgroup and, portable, one live thread.
// Nothing is read back and nothing is allocated per chunk: uniforms are rewritten, bind groups kept per
// caller buffer set.
import { ShapeError, UnsupportedError } from '../../errors.js';
import { bytesPerElement, type DType, type HostData } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CCA_POOL_SCORES, ccaParams, ccaPoolWgsl } from '../../kernels/cca-wgsl.js';
import {
  CCA_DECODE_DEFAULT,
  ccaDecodeParams,
  ccaDecodePartialWgsl,
  ccaDecodeV4Wgsl,
  type CcaDecodeVersion,
} from '../../kernels/cca-decode-wgsl.js';
import { decodeV3Grid } from '../../kernels/flash-decode-v3-wgsl.js';
import { flashDecodeMergeWgsl } from '../../kernels/flash-decode-wgsl.js';
import { ccaAttendKernel, checkCcaParams, chooseCcaVariant, type CcaKernelVariant, type CcaParams } from '../cca.js';
import { createDecodeScratch, decodeLanes, decodeSplitting, type DecodeScratch } from '../flash-decode.js';
import type { LayerAttention, LayerCacheState, LayerChunk } from '../layer.js';
import { restoreCcaCache, saveCcaCache, type CcaImage } from './cca-cache-state.js';
import { BindGroupCache, persistentUniform, writeUniform } from './gpu-binds.js';
import { ResidentKvAppend } from './kv-append-gpu.js';

export interface CcaGpuLayerOptions extends CcaParams {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Tokens of the longest sequence (sizes the core store: floor(maxTokens / g) cores). */
  maxTokens: number;
  /** Tokens of the largest chunk (sizes the LSE scratch); default min(maxTokens, 4096). */
  maxChunk?: number;
  dtype: DType;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
  /** Partial states of split-KV decoding, shared by a model's layers (GpuLayerScratch.decode); default: its own. */
  decodeScratch?: DecodeScratch;
  /** The decoding step's partial kernel (kernels/cca-decode-wgsl.ts; default decode-v4). */
  decode?: CcaDecodeVersion;
}

interface Kernels {
  pool: GPUComputePipeline;
  attend: GPUComputePipeline;
  /** Query rows per workgroup of attend. */
  attendRows: number;
  decode: GPUComputePipeline;
  merge: GPUComputePipeline;
}

export class CcaGpuLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  readonly plan: string;
  readonly ringCapacity: number;
  readonly coreCapacity: number;
  private seen = 0;
  private pooled = 0;
  private readonly binds = new BindGroupCache();

  private constructor(
    private readonly gpu: GpuContext,
    readonly opts: Required<Omit<CcaGpuLayerOptions, 'variant' | 'decodeScratch' | 'decode'>> & {
      variant: CcaKernelVariant;
    },
    private readonly kernels: Kernels,
    private readonly cacheK: GPUBuffer,
    private readonly cacheV: GPUBuffer,
    private readonly lse: GPUBuffer,
    private readonly params: GPUBuffer,
    private readonly append: ResidentKvAppend,
    private readonly decodeParams: GPUBuffer,
    private readonly decode: DecodeScratch,
    /** The decode scratch when this layer made it (else the caller's, not released here). */
    private readonly ownDecode: boolean,
    private readonly decodeVersion: CcaDecodeVersion,
  ) {
    const o = opts;
    this.ringCapacity = o.window + o.group - 1;
    this.coreCapacity = Math.max(1, Math.floor(o.maxTokens / o.group));
    this.spec = `cca:group=${o.group},window=${o.window}`;
    const why =
      o.variant !== 'portable'
        ? 'f16 subgroup matrices on this device'
        : `${o.dtype}, head dim ${o.headDim}${gpu.features.subgroupMatrixF16 ? '' : ', no f16 subgroup matrices'}`;
    this.plan =
      `cca resident: pool per (KV head, group) with the group's last query, pass 2 ${o.variant} (${why}), ` +
      `cores ${this.coreCapacity} + ring ${this.ringCapacity} rows per KV head, ${o.dtype}; ` +
      `decode: split-KV (${decodeVersion}) over the cores and ring rows a token sees, states merged`;
  }

  static async create(gpu: GpuContext, options: CcaGpuLayerOptions): Promise<CcaGpuLayer> {
    checkCcaParams(options);
    const { heads, kvHeads, headDim: D, dtype, maxTokens, group, window } = options;
    if (!(kvHeads >= 1 && heads % kvHeads === 0 && D >= 1 && maxTokens >= 1))
      throw new ShapeError(`cca layer: heads ${heads} must be a multiple of KV heads ${kvHeads}, dims >= 1`);
    if (dtype === 'f16' && !gpu.features.f16)
      throw new UnsupportedError('this device has no shader-f16; use f32 storage for the cca layer');
    const G = heads / kvHeads;
    if ((G + 1) * group > CCA_POOL_SCORES)
      throw new UnsupportedError(
        `cca pooling holds (query heads per KV head + 1) x group = ${(G + 1) * group} scores in workgroup memory, ` +
          `at most ${CCA_POOL_SCORES}; use a smaller group`,
      );
    const maxChunk = Math.min(options.maxChunk ?? 4096, maxTokens);
    const variant = chooseCcaVariant(gpu, D, dtype, options.variant);
    const { decodeScratch, decode: decodeVersion = CCA_DECODE_DEFAULT, ...rest } = options;
    if (decodeScratch && (decodeScratch.heads < heads || decodeScratch.headDim !== D))
      throw new ShapeError(
        `cca layer: a decode scratch of ${decodeScratch.heads} heads x ${decodeScratch.headDim} is too small`,
      );
    const opts = { ...rest, maxChunk, variant, scale: options.scale ?? 1 / Math.sqrt(D) };
    const [cores, ring] = [Math.max(1, Math.floor(maxTokens / group)), window + group - 1];
    const rows = cores + ring;
    const cacheBytes = kvHeads * rows * D * bytesPerElement(dtype);
    const attend = await ccaAttendKernel(gpu, variant, D, dtype);
    const kernels: Kernels = {
      pool: await gpu.pipeline(`cca-pool-${D}-${dtype}`, () => ccaPoolWgsl(D, dtype)),
      attend: attend.pipeline,
      attendRows: attend.rows,
      decode: await ccaDecodePipeline(gpu, decodeVersion, D, dtype, heads / kvHeads),
      merge: await gpu.pipeline(`flash-decode-merge-${D}`, () => flashDecodeMergeWgsl(D)),
    };
    const owned: GPUBuffer[] = [];
    try {
      owned.push(await gpu.createBuffer(cacheBytes, 'cca cores + ring keys'));
      owned.push(await gpu.createBuffer(cacheBytes, 'cca cores + ring values'));
      owned.push(await gpu.createBuffer(heads * maxChunk * 4, 'cca lse scratch'));
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
    const [k, v, lse] = owned;
    // The raw tokens' ring after the core rows.
    const layout = { kvHeads, headDim: D, slots: rows, sinks: 0, ring, row0: cores };
    const append = await ResidentKvAppend.create(gpu, dtype, { k, v }, layout).catch((e) => {
      owned.forEach((b) => gpu.release(b));
      throw e;
    });
    const decode =
      decodeScratch ??
      (await createDecodeScratch(gpu, heads, D).catch((e) => {
        owned.forEach((b) => gpu.release(b));
        append.destroy();
        throw e;
      }));
    const [u64, decodeU] = [persistentUniform(gpu, 64), persistentUniform(gpu, 64)];
    return new CcaGpuLayer(gpu, opts, kernels, k, v, lse, u64, append, decodeU, decode, !decodeScratch, decodeVersion);
  }

  /** Tokens seen so far (the next token's position). */
  get length(): number {
    return this.seen;
  }

  get cores(): number {
    return this.pooled;
  }

  /** Bytes the cache holds: pooled cores and the raw ring, keys and values (as CcaKVCache.bytes). */
  get cacheBytes(): number {
    const o = this.opts;
    const rows = this.pooled + Math.min(this.seen, this.ringCapacity);
    return 2 * rows * o.kvHeads * o.headDim * bytesPerElement(o.dtype);
  }

  /** Bytes allocated on the device for the cache (cores for maxTokens plus the ring), keys and values. */
  get allocatedBytes(): number {
    return this.cacheK.size + this.cacheV.size;
  }

  async forward(chunk: LayerChunk<GPUBuffer>): Promise<void> {
    const o = this.opts;
    const { start: P, tokens: T } = chunk;
    if (P !== this.seen)
      throw new ShapeError(`cca layer holds ${this.seen} tokens but the chunk starts at ${P}; reset() first`);
    if (!Number.isInteger(T) || T < 1 || T > o.maxChunk)
      throw new ShapeError(`cca layer takes chunks of 1..${o.maxChunk} tokens, got ${T}`);
    if (P + T > o.maxTokens) throw new ShapeError(`cca layer holds at most ${o.maxTokens} tokens (${P} + ${T})`);
    const gpu = this.gpu;
    const rowTiles = Math.ceil(T / this.kernels.attendRows);
    const poolCount = Math.floor((P + T) / o.group) - this.pooled;
    const G = o.heads / o.kvHeads;
    if (Math.max(rowTiles, poolCount) > gpu.maxWorkgroupsPerDim)
      throw new UnsupportedError(`a cca chunk of ${T} tokens needs more workgroups than this device allows`);
    writeUniform(
      gpu,
      this.params,
      ccaParams({
        queries: T,
        queryStart: P,
        raw: T,
        rawStart: P,
        coreCapacity: this.coreCapacity + this.ringCapacity,
        poolFirst: this.pooled,
        group: o.group,
        window: o.window,
        headsPerKv: G,
        scale: o.scale,
        ringRow0: this.coreCapacity,
        ringCapacity: this.ringCapacity,
        ringEnd: P,
      }),
    );
    const append = this.append.prepare(P, T);
    const { q, k, v, out } = chunk;
    const { pool, attend, decode, merge } = this.kernels;
    const dec = this.decode;
    const [poolGroup, attendGroup, appendGroup, decodeGroup, mergeGroup] = this.binds.get([q, k, v, out], () => [
      gpu.bind(pool, [q, k, v, this.cacheK, this.cacheV, this.params]),
      gpu.bind(attend, [q, this.cacheK, this.cacheV, k, v, out, this.lse, this.params]),
      this.append.bind(k, v),
      gpu.bind(decode, [q, this.cacheK, this.cacheV, dec.o, dec.lse, this.decodeParams]),
      gpu.bind(merge, [dec.o, dec.lse, out, this.lse, this.decodeParams]),
    ]);
    const step =
      T === 1
        ? ccaDecodeParams(
            {
              position: P,
              group: o.group,
              window: o.window,
              rowsPerHead: this.coreCapacity + this.ringCapacity,
              ringRow0: this.coreCapacity,
              ringCapacity: this.ringCapacity,
              headsPerKv: G,
              scale: o.scale,
            },
            decodeSplitting(this.decodeVersion),
          )
        : undefined;
    if (step) writeUniform(gpu, this.decodeParams, step.params);
    // One pass: its dispatches run in order with storage writes visible to the next (pool -> attend reads
    // the new cores; attend reads the ring before append overwrites its oldest slots; a decoded token is
    // appended before it attends: the slot it overwrites holds a position already pooled into a core it sees).
    await gpu.run(
      'cca layer',
      (pass) => {
        if (poolCount > 0) {
          pass.setPipeline(pool);
          pass.setBindGroup(0, poolGroup);
          pass.dispatchWorkgroups(poolCount, o.kvHeads);
        }
        if (!step) {
          pass.setPipeline(attend);
          pass.setBindGroup(0, attendGroup);
          pass.dispatchWorkgroups(rowTiles, o.heads);
        }
        append(pass, appendGroup);
        if (step) {
          pass.setPipeline(decode);
          pass.setBindGroup(0, decodeGroup);
          if (this.decodeVersion === 'decode-v1') pass.dispatchWorkgroups(step.splits, o.heads);
          else pass.dispatchWorkgroups(...decodeV3Grid(step.splits, o.heads, o.kvHeads));
          pass.setPipeline(merge);
          pass.setBindGroup(0, mergeGroup);
          pass.dispatchWorkgroups(o.heads);
        }
      },
      true,
    );
    this.pooled += poolCount;
    this.seen += T;
  }

  reset(): void {
    this.seen = 0;
    this.pooled = 0;
  }

  /** The cache read back (cores and ring of every KV head: small), for a saved session. */
  async saveCache(): Promise<LayerCacheState> {
    const [k, v] = await this.gpu.readParts([
      [this.cacheK, this.cacheK.size],
      [this.cacheV, this.cacheV.size],
    ]);
    const typed = (b: ArrayBuffer) => (this.opts.dtype === 'f16' ? new Uint16Array(b) : new Float32Array(b));
    const image = this.image();
    this.rows(typed(k), image.coreK, image.ringK, 'out');
    this.rows(typed(v), image.coreV, image.ringV, 'out');
    return saveCcaCache(this.seen, image);
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    if (!(state.tokens >= 0 && state.tokens <= this.opts.maxTokens)) return false;
    const image = this.image();
    if (!restoreCcaCache(state, image, () => image)) return false;
    for (const [buffer, cores, ring] of [
      [this.cacheK, image.coreK, image.ringK],
      [this.cacheV, image.coreV, image.ringV],
    ] as const) {
      const all = this.opts.dtype === 'f16' ? new Uint16Array(buffer.size / 2) : new Float32Array(buffer.size / 4);
      this.rows(all, cores, ring, 'in');
      this.gpu.write(buffer, 0, all.buffer as ArrayBuffer);
    }
    [this.seen, this.pooled] = [state.tokens, Math.floor(state.tokens / this.opts.group)];
    return true;
  }

  /** Host arrays of the cache's parts: cores [Hkv, coreCapacity, D] and ring [Hkv, ringCapacity, D]. */
  private image(): CcaImage {
    const { kvHeads, headDim: D, dtype, group, window } = this.opts;
    const make = (rows: number) =>
      dtype === 'f16' ? new Uint16Array(kvHeads * rows * D) : new Float32Array(kvHeads * rows * D);
    const [coreK, coreV, ringK, ringV] = [
      make(this.coreCapacity),
      make(this.coreCapacity),
      make(this.ringCapacity),
      make(this.ringCapacity),
    ];
    return { kvHeads, headDim: D, dtype, group, window, coreStride: this.coreCapacity, coreK, coreV, ringK, ringV };
  }

  /** Between a buffer's bytes (per KV head: the core rows, then the ring's) and the image's parts. */
  private rows(all: HostData, cores: HostData, ring: HostData, way: 'in' | 'out'): void {
    const D = this.opts.headDim;
    const rows = this.coreCapacity + this.ringCapacity;
    for (let h = 0; h < this.opts.kvHeads; h++)
      for (const [part, at, n] of [
        [cores, 0, this.coreCapacity],
        [ring, this.coreCapacity, this.ringCapacity],
      ] as const) {
        const [from, to] = [(h * rows + at) * D, (h * rows + at + n) * D];
        if (way === 'out') part.set(all.subarray(from, to), h * n * D);
        else all.set(part.subarray(h * n * D, (h + 1) * n * D), from);
      }
  }

  destroy(): void {
    for (const b of [this.cacheK, this.cacheV, this.lse]) this.gpu.release(b);
    if (this.ownDecode) [this.decode.o, this.decode.lse].forEach((b) => this.gpu.release(b));
    this.params.destroy();
    this.append.destroy();
    this.decodeParams.destroy();
    this.binds.clear();
  }
}

/** The decoding step's partial kernel: v4 with as many lanes per key as the device's smallest subgroup holds. */
async function ccaDecodePipeline(
  gpu: GpuContext,
  version: CcaDecodeVersion,
  D: number,
  dtype: DType,
  group: number,
): Promise<GPUComputePipeline> {
  if (version === 'decode-v1') return gpu.pipeline(`cca-decode-${D}-${dtype}`, () => ccaDecodePartialWgsl(D, dtype));
  const lanes = await decodeLanes(gpu);
  return gpu.pipeline(`cca-decode-v4-${D}-${dtype}-g${group}-l${lanes}`, () => ccaDecodeV4Wgsl(D, dtype, group, lanes));
}
