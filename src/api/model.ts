// loadModel -> Model -> createSession: the library's face over the loaders, the decoder for a device and
// the memory plan. A session is refused before anything is allocated when its context does not fit.
import { acquireDevice, type BackendName, type Device } from '../runtime/device.js';
import { createDecoder, prefillChunkFor } from '../model/forward/create-decoder.js';
import { parseMethodSpec } from '../attention/spec.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import type { LoadedModel, ModelConfig, RopeScaling, Tokenizer, WeightTensor } from '../model/types.js';
import { InputError } from '../errors.js';
import { type ChatTemplate, chatTemplate, noChatTemplate } from './chat.js';
import { DisposedError } from './errors.js';
import { type ContextPlan, defaultMemoryBudget, heldWeightBytes, planContext, refuse } from './plan.js';
import { type LoadProgress, type ModelFiles, type ModelSource, readModelFiles } from './source.js';
import { Session } from './session.js';
import { modelFingerprint } from './session-file.js';
import { leaseWeights, type WeightsLease } from '../model/forward/gpu-weights-shared.js';

export interface LoadModelOptions {
  /** 'auto' (default): WebGPU when an adapter exists, else the CPU; or a Device already acquired (kept alive). */
  device?: BackendName | Device;
  /** WebGPU: weights and KV cache in f32 (default, exact) or f16 (half the memory). The CPU holds f32. */
  storage?: 'f32' | 'f16';
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** A Jinja chat template to use instead of (or where there is none) the model's own. */
  chatTemplate?: string;
  /** Bytes sessions may use in all (weights included); default: the host's total memory. */
  memoryBytes?: number;
}

export interface SessionOptions {
  /** Tokens the session holds at most, prompt and generated (default: the model's training context). */
  contextSize?: number;
  /** Attention method spec for every layer, or hybrid:every=E,window=W (default flash: exact). */
  attention?: string;
  /** RoPE context extension replacing the model's: a spec ('yarn:factor=4,original=2048') or the object. */
  rope?: string | RopeScaling;
  /** Tokens per prefill step (default 512). */
  chunk?: number;
}

export class Model {
  private readonly sessions = new Set<Session>();
  private template?: ChatTemplate;
  private disposed = false;
  private fingerprintPromise?: Promise<string>;
  /** The weights on the GPU, uploaded at the first session (WebGPU only). */
  private weights?: Promise<WeightsLease>;

  constructor(
    private readonly files: ModelFiles,
    readonly device: Device,
    private readonly ownsDevice: boolean,
    readonly storage: 'f32' | 'f16',
    readonly memoryBytes: number,
    private readonly templateSource: string | undefined,
  ) {}

  get config(): ModelConfig {
    return this.files.model.config;
  }
  get tokenizer(): Tokenizer {
    return this.files.model.tokenizer;
  }
  /** File or directory name, for messages. */
  get source(): string {
    return this.files.model.source;
  }
  get hasChatTemplate(): boolean {
    return this.templateSource !== undefined;
  }
  /** The raw files behind the model (saved sessions hash them). */
  get modelFiles(): ModelFiles {
    return this.files;
  }

  /** A fingerprint of the weights (session-file.ts), computed once. */
  fingerprint(): Promise<string> {
    this.fingerprintPromise ??= modelFingerprint(this.files.model);
    return this.fingerprintPromise;
  }

  /** The chat template, parsed on first use; a NoChatTemplateError when the model has none. */
  chatTemplate(): ChatTemplate {
    if (this.templateSource === undefined) throw noChatTemplate(this.source);
    this.template ??= chatTemplate(this.templateSource, this.files.special);
    return this.template;
  }

  /** The prefill chunk of a session: the one asked for, else what the planner gives this device (2048 on tensor cores). */
  private chunkFor(o: SessionOptions): number {
    return o.chunk ?? prefillChunkFor(this.device, this.storage, this.config);
  }

  /** What a session of this size and method would hold; `fits` says whether it is within the budget. */
  plan(o: SessionOptions = {}): ContextPlan {
    const backend = this.device.backend;
    return planContext(this.config, {
      contextSize: o.contextSize ?? this.config.contextLength,
      attention: o.attention ?? 'flash',
      backend,
      storage: this.storage,
      chunk: this.chunkFor(o),
      memoryBytes: this.memoryBytes,
      weightBytes: heldWeightBytes(
        weightList(this.files.model),
        backend,
        this.storage,
        this.files.model.weights.tokenEmbedding,
      ),
    });
  }

  async createSession(o: SessionOptions = {}): Promise<Session> {
    this.check();
    const contextSize = o.contextSize ?? this.config.contextLength;
    if (!Number.isSafeInteger(contextSize) || contextSize < 1)
      throw new InputError(`contextSize must be a positive integer, got ${contextSize}`);
    const chunk = this.chunkFor(o);
    if (!Number.isSafeInteger(chunk) || chunk < 1)
      throw new InputError(`chunk must be a positive integer, got ${chunk}`);
    const attention = o.attention ?? 'flash';
    const schedule = scheduleFromSpec(parseMethodSpec(attention));
    const p = this.plan({ ...o, contextSize, attention });
    if (!p.fits) throw refuse(p);
    const rope = typeof o.rope === 'string' ? parseRopeSpec(o.rope) : o.rope;
    const model: LoadedModel = rope ? { ...this.files.model, config: { ...this.config, rope } } : this.files.model;
    const gpu = this.device.gpu;
    if (gpu && !this.weights) {
      // The model keeps one upload of its weights for its lifetime: every session borrows it (gpu-weights-shared.ts).
      this.weights = leaseWeights(gpu, this.files.model, this.storage);
      this.weights.catch(() => (this.weights = undefined));
    }
    await this.weights;
    const decoder = await createDecoder(this.device, model, schedule, {
      maxTokens: contextSize,
      chunk,
      storage: this.storage,
    });
    const c = model.config;
    const session = new Session(
      decoder,
      this.tokenizer,
      {
        contextSize,
        attention,
        chunk,
        wholePrompt: parseMethodSpec(attention).name === 'star',
        positions: { rope: c.rope, ropeTheta: c.ropeTheta, ropeLayout: c.ropeLayout },
      },
      () => this.chatTemplate(),
      this.files.special,
      (s) => this.sessions.delete(s),
      this,
    );
    this.sessions.add(session);
    return session;
  }

  private check(): void {
    if (this.disposed) throw new DisposedError('the model was disposed');
  }

  /** Disposes every session, then the device when loadModel acquired it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of [...this.sessions]) s.dispose();
    this.weights?.then((w) => w.release()).catch(() => undefined);
    if (this.ownsDevice) this.device.destroy();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

export async function loadModel(source: ModelSource, o: LoadModelOptions = {}): Promise<Model> {
  const storage = o.storage ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`storage must be f32 or f16, got '${storage}'`);
  if (o.memoryBytes !== undefined && !(o.memoryBytes > 0))
    throw new InputError(`memoryBytes must be a positive number, got ${o.memoryBytes}`);
  const files = await readModelFiles(source, o);
  o.signal?.throwIfAborted();
  const given = typeof o.device === 'object' ? o.device : undefined;
  const device = given ?? (await acquireDevice((o.device as BackendName | undefined) ?? 'auto'));
  const memoryBytes = o.memoryBytes ?? (await defaultMemoryBudget());
  return new Model(files, device, !given, storage, memoryBytes, o.chatTemplate ?? files.chatTemplate);
}

/** A model from weights already in memory (a loader of your own, or random weights for benchmarks). */
export async function modelFromWeights(
  loaded: LoadedModel,
  o: Omit<LoadModelOptions, 'onProgress' | 'signal'> = {},
): Promise<Model> {
  const storage = o.storage ?? 'f32';
  const given = typeof o.device === 'object' ? o.device : undefined;
  const device = given ?? (await acquireDevice((o.device as BackendName | undefined) ?? 'auto'));
  const files: ModelFiles = { model: loaded, special: {}, chatTemplate: undefined };
  return new Model(files, device, !given, storage, o.memoryBytes ?? (await defaultMemoryBudget()), o.chatTemplate);
}

function weightList(m: LoadedModel): WeightTensor[] {
  const w = m.weights;
  const list = [w.tokenEmbedding, w.outputNorm, ...(w.output ? [w.output] : [])];
  for (const l of w.layers) for (const t of Object.values(l)) if (t && 'bytes' in t) list.push(t as WeightTensor);
  return list;
}

export interface PlanOptions extends SessionOptions {
  device?: BackendName;
  storage?: 'f32' | 'f16';
  memoryBytes?: number;
}

/** What a context costs before loading: from a Hugging Face directory (its config.json alone), a config.json,
 * a GGUF file, or a ModelConfig. Weights are counted at 2 bytes a parameter unless the model is loaded. */
export async function plan(source: string | ModelConfig, o: PlanOptions = {}): Promise<ContextPlan> {
  let config: ModelConfig;
  if (typeof source === 'string') {
    const { loadModelConfig } = await import('../model/load/load.js');
    config = loadModelConfig(source);
  } else config = source;
  const backend = o.device === 'webgpu' ? 'webgpu' : 'cpu';
  return planContext(config, {
    contextSize: o.contextSize ?? config.contextLength,
    attention: o.attention ?? 'flash',
    backend,
    storage: o.storage,
    chunk: o.chunk,
    memoryBytes: o.memoryBytes ?? (await defaultMemoryBudget()),
  });
}
