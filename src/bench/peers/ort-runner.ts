// The peer engine: ONNX Runtime Web (onnxruntime-web, the runtime under transformers.js in a browser) on a
// graph from onnx-llama.ts, in this Node process. Two execution providers:
// - 'wasm': ONNX Runtime's CPU kernels compiled to WebAssembly (the package's Node build, one thread);
// - 'webgpu': ONNX Runtime's WebGPU EP (C++ compiled to WebAssembly, calling WebGPU from JS), given the
//   navigator.gpu of the `webgpu` package: the same Dawn that longctx runs on. The browser build is loaded
//   from its file with the wasm binary read from disk, since it would fetch() it otherwise.
// Decoding keeps the KV cache where the EP put it (GPU buffers on WebGPU, as transformers.js does with
// preferredOutputLocation 'gpu-buffer'); GPU memory is counted by wrapping the device's createBuffer/destroy.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Ort from 'onnxruntime-web';
import { InputError } from '../../errors.js';
import { EXTERNAL_DATA_NAME, type OnnxLlama } from './onnx-llama.js';
import { DAWN_OPTIONS } from '../../runtime/acquire-gpu.js';

export type OrtBackend = 'wasm' | 'webgpu';

type OrtModule = typeof Ort;

/** Live and peak bytes of the GPU buffers ONNX Runtime holds (its buffer cache included). */
export interface GpuBufferMeter {
  liveBytes: number;
  peakBytes: number;
  resetPeak(): void;
}

// require.resolve gives the CJS entry (dist/ort.node.min.js): scripts/pack-device.sh --with-ort must keep it.
const distDir = () => join(dirname(createRequire(import.meta.url).resolve('onnxruntime-web')), '');

async function loadOrt(backend: OrtBackend): Promise<{ ort: OrtModule; meter?: GpuBufferMeter }> {
  if (backend === 'wasm') {
    const ort = (await import('onnxruntime-web')) as OrtModule;
    ort.env.wasm.numThreads = 1;
    return { ort };
  }
  const dist = distDir();
  // The native WebGPU EP (C++ to wasm, asyncify), or with LONGCTX_ORT_JSEP=1 the JS-kernel one (JSEP, 'all' build).
  const jsep = process.env.LONGCTX_ORT_JSEP === '1';
  const bundle = jsep ? 'ort.all.bundle.min.mjs' : 'ort.webgpu.bundle.min.mjs';
  const ort = (await import(pathToFileURL(join(dist, bundle)).href)) as OrtModule;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmBinary = readFileSync(join(dist, `ort-wasm-simd-threaded.${jsep ? 'jsep' : 'asyncify'}.wasm`));
  const meter = await installNodeGpu();
  return { ort, meter };
}

/** Sets navigator.gpu (which ONNX Runtime's WebGPU EP asks for its adapter) to a GPU of the `webgpu` package whose
 * adapters' devices are adapted (below). A GPU of its own, so that longctx's device (acquired without navigator.gpu
 * in Node) is not metered with it: acquire longctx's device first. */
async function installNodeGpu(): Promise<GpuBufferMeter> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const mod = (await import('webgpu')) as unknown as { create: (o: string[]) => GPU; globals: object };
  Object.assign(globalThis, mod.globals);
  // Dawn's options as longctx's own device has them: without vulkan_enable_f16_on_nvidia the H200's adapter has
  // no shader-f16, and the EP failed in its first f16 Gather (2026-12-02).
  const gpu = mod.create([...DAWN_OPTIONS]);
  const meter = {
    liveBytes: 0,
    peakBytes: 0,
    resetPeak() {
      this.peakBytes = this.liveBytes;
    },
  };
  const requestAdapter = gpu.requestAdapter.bind(gpu);
  Object.defineProperty(gpu, 'requestAdapter', {
    value: async (o?: GPURequestAdapterOptions) => {
      const adapter = await requestAdapter(o);
      if (adapter) adaptAdapter(adapter, meter);
      return adapter;
    },
  });
  const g = globalThis as { navigator?: object };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else g.navigator = { gpu };
  return meter;
}

/** Wraps the adapter's requestDevice so that the device it makes counts its buffers' bytes, and copies data that
 * ONNX Runtime writes from its (shared) wasm memory: Dawn's Node bindings refuse SharedArrayBuffer views. */
function adaptAdapter(adapter: GPUAdapter, meter: GpuBufferMeter): void {
  // The EP asks only for the adapter features it knows; shader-f16 is added when the adapter has it.
  const features = adapter.features;
  const requestDevice = adapter.requestDevice.bind(adapter);
  Object.defineProperty(adapter, 'requestDevice', {
    value: async (descriptor?: GPUDeviceDescriptor) => {
      const asked = [...(descriptor?.requiredFeatures ?? [])] as GPUFeatureName[];
      if (features.has('shader-f16') && !asked.includes('shader-f16')) asked.push('shader-f16');
      console.error(
        `bench peers: the EP asked for [${[...(descriptor?.requiredFeatures ?? [])].join(', ')}]; ` +
          `requesting [${asked.join(', ')}] of the adapter's ${features.size} features`,
      );
      const device = await requestDevice({ ...descriptor, requiredFeatures: asked });
      const queue = device.queue;
      const writeBuffer = queue.writeBuffer.bind(queue);
      Object.defineProperty(queue, 'writeBuffer', {
        value: (buffer: GPUBuffer, offset: number, data: Uint8Array, dataOffset = 0, size?: number) => {
          const shared = typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer;
          const n = size ?? data.length - dataOffset;
          if (shared)
            writeBuffer(buffer, offset, data.slice(dataOffset, dataOffset + n) as Uint8Array<ArrayBuffer>, 0, n);
          else writeBuffer(buffer, offset, data as Uint8Array<ArrayBuffer>, dataOffset, n);
        },
      });
      const createBuffer = device.createBuffer.bind(device);
      Object.defineProperty(device, 'createBuffer', {
        value: (d: GPUBufferDescriptor) => {
          const buffer = createBuffer(d);
          const destroy = buffer.destroy.bind(buffer);
          let live = true;
          meter.liveBytes += d.size;
          meter.peakBytes = Math.max(meter.peakBytes, meter.liveBytes);
          Object.defineProperty(buffer, 'destroy', {
            value: () => {
              if (live) meter.liveBytes -= d.size;
              live = false;
              destroy();
            },
          });
          return buffer;
        },
      });
      return device;
    },
  });
}

/** An ONNX Runtime Web session on `backend` for a model with its external data blob (EXTERNAL_DATA_NAME). */
export async function createOrtSession(
  model: Uint8Array,
  data: Uint8Array,
  backend: OrtBackend,
  outputLocations: Record<string, 'gpu-buffer' | 'cpu'>,
): Promise<{ ort: OrtModule; session: Ort.InferenceSession; meter?: GpuBufferMeter }> {
  const { ort, meter } = await loadOrt(backend);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [backend],
    externalData: [{ path: EXTERNAL_DATA_NAME, data }],
    graphOptimizationLevel: 'all',
    preferredOutputLocation: outputLocations,
    logSeverityLevel: 3,
  });
  return { ort, session, meter };
}

export interface GreedyRun {
  ids: number[];
  prefillSeconds: number;
  /** Seconds of the decode steps after the first generated token (which warms the decode shapes). */
  decodeSeconds: number;
  decodeSteps: number;
  /** Logits of each generated token's position (only when asked). */
  logits?: Float32Array[];
}

/** One ONNX Runtime session on a decoder graph, run greedily. */
export class OrtPeer {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: Ort.InferenceSession,
    private readonly graph: Pick<OnnxLlama, 'layers' | 'kvHeads' | 'headDim' | 'dtype'>,
    readonly backend: OrtBackend,
    readonly meter?: GpuBufferMeter,
  ) {}

  get dtype(): 'f32' | 'f16' {
    return this.graph.dtype;
  }

  static async create(graph: OnnxLlama, backend: OrtBackend): Promise<OrtPeer> {
    if (backend === 'wasm' && graph.dtype !== 'f32')
      throw new InputError('the wasm EP runs the f32 graph (its CPU kernels have no f16 MatMul)');
    const kv: Record<string, 'gpu-buffer' | 'cpu'> = {};
    for (let i = 0; i < graph.layers; i++)
      for (const x of ['key', 'value']) kv[`present.${i}.${x}`] = backend === 'webgpu' ? 'gpu-buffer' : 'cpu';
    const { ort, session, meter } = await createOrtSession(graph.model, graph.data, backend, { logits: 'cpu', ...kv });
    return new OrtPeer(ort, session, graph, backend, meter);
  }

  /** Prefill `prompt` in one run, then `steps` greedy tokens one run each; returns the generated ids. */
  async greedy(prompt: readonly number[], steps: number, keepLogits = false): Promise<GreedyRun> {
    const ort = this.ort;
    const g = this.graph;
    const empty = g.dtype === 'f16' ? new Uint16Array(0) : new Float32Array(0);
    const type = g.dtype === 'f16' ? 'float16' : 'float32';
    let past: Record<string, Ort.Tensor> = {};
    for (let i = 0; i < g.layers; i++)
      for (const x of ['key', 'value'])
        past[`past_key_values.${i}.${x}`] = new ort.Tensor(type, empty, [1, g.kvHeads, 0, g.headDim]);
    const ids: number[] = [];
    const logits: Float32Array[] = [];
    let total = 0;
    let prefillSeconds = 0;
    let decodeStart = 0;
    let tokens = [...prompt];
    for (let step = 0; step < steps; step++) {
      const a = performance.now();
      total += tokens.length;
      const feeds: Record<string, Ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
        seqlens_k: new ort.Tensor('int32', Int32Array.of(total - 1), [1]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(total), [1]),
        ...past,
      };
      const out = await this.session.run(feeds);
      const row = (await out.logits.getData()) as Float32Array;
      for (const t of Object.values(past)) t.dispose();
      past = {};
      for (let i = 0; i < g.layers; i++)
        for (const x of ['key', 'value']) past[`past_key_values.${i}.${x}`] = out[`present.${i}.${x}`];
      let best = 0;
      for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
      if (Number.isNaN(row[best])) throw new Error('onnxruntime-web returned NaN logits');
      ids.push(best);
      if (keepLogits) logits.push(Float32Array.from(row));
      tokens = [best];
      if (step === 0) prefillSeconds = (performance.now() - a) / 1000;
      if (step === 0) decodeStart = performance.now();
    }
    for (const t of Object.values(past)) t.dispose();
    const decodeSteps = Math.max(0, steps - 1);
    return {
      ids,
      prefillSeconds,
      decodeSeconds: (performance.now() - decodeStart) / 1000,
      decodeSteps,
      logits: keepLogits ? logits : undefined,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
