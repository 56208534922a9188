// `longctx generate`: text from a model. Only the generated text goes to stdout (ending with a newline,
// as llama2.c prints); progress and speed go to stderr.
import { wantsHosts } from './attend-hosts.js';
import { readBounded } from '../io/bounded-read.js';
import { limit } from '../io/limits.js';
import { checkRunFits, checkRunServed, type RunShape } from '../model/load/run-fits.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import { POSITIONS_USAGE, formatPositionSpec, parsePositionSpec } from '../model/positions/position-method.js';
import { InputError } from '../errors.js';
import { parseMethodSpec } from '../attention/spec.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { acquireDevice } from '../runtime/device.js';
import { DEFAULT_PREFILL_CHUNK } from '../attention/planner.js';
import { createDecoder, prefillChunkFor } from '../model/forward/create-decoder.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import type { GpuContext, GpuCounters } from '../runtime/webgpu.js';
import { generate, promptTokens } from '../model/generation/generate.js';
import { loadModel } from '../model/load/load.js';
import { backendOption, numberOption, parse, required } from './args.js';
import { prefillBar } from './progress-report.js';
import { GENERATE_HOSTS_OPTIONS, GENERATE_HOSTS_USAGE, generateAcrossHostsCommand } from './generate-hosts.js';
import { restoreSession, withSession, writeSession } from './generate-session.js';
import type { LoadedSession } from '../api/load-session.js';

export const GENERATE_USAGE = `usage: longctx generate --model F (--prompt TEXT | --prompt-file F) --max-tokens N [--temperature T]
                        [--top-p P] [--seed S] [--backend cpu|webgpu|auto] [--attention SPEC] [--no-bos] [--chunk N]
                        [--storage f32|f16] [--stats] [--session F] [--save-session F]
  F: a GGUF file (F32, F16, BF16, Q8_0 tensors) or a Hugging Face directory; llama, qwen2, mistral.
  Temperature 0 (default) is greedy.
  SPEC: any attend method for every layer (default flash), or hybrid:every=E,window=W for a layer schedule.
  The prompt starts with the model's BOS token unless --no-bos; an empty prompt is the BOS alone.
  --rope linear:factor=F | ntk:factor=F[,dynamic=1,original=N] | yarn:factor=F,original=N | llama3:factor=F,original=N,low=L,high=H
    RoPE context extension, replacing the model's own (read from config.json or GGUF metadata).
  A prompt plus --max-tokens beyond the model's trained context is refused unless the RoPE scaling or a
    windowed method serves it; --allow-overflow runs it anyway.
  ${POSITIONS_USAGE}
  --storage f16 (WebGPU): weights and KV cache in half precision, half the memory; default f32.
  --chunk N: prompt tokens per prefill step (default 2048 where the matmuls run on tensor cores, else 512).
  --save-session F: after the run, its context (prompt and generated tokens, with the KV caches where every
    layer's cache is plain KV) goes to F; with --max-tokens 0 the prompt is only prefilled.
  --session F: the run starts from F's context (the prompt is appended, no BOS); the model, --rope and
    --positions must be F's, and --attention defaults to F's. A long document prefilled once answers many
    questions without a prefill each.
  --stats: each layer's method and kernel (the planner's choice and reason), on WebGPU the matmul kernels
    that ran, and the host reads and device creations of the prefill (per chunk) and of each decoded token, on stderr.
${GENERATE_HOSTS_USAGE}`;

export async function generateCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    prompt: { type: 'string' },
    'prompt-file': { type: 'string' },
    'max-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    backend: { type: 'string' },
    attention: { type: 'string' },
    'no-bos': { type: 'boolean' },
    chunk: { type: 'string' },
    storage: { type: 'string' },
    rope: { type: 'string' },
    stats: { type: 'boolean' },
    'allow-overflow': { type: 'boolean' },
    positions: { type: 'string' },
    ...GENERATE_HOSTS_OPTIONS,
    session: { type: 'string' },
    'save-session': { type: 'string' },
  });
  if ((v.prompt === undefined) === (v['prompt-file'] === undefined))
    throw new InputError('give exactly one of --prompt TEXT and --prompt-file F');
  const prompt =
    typeof v.prompt === 'string'
      ? v.prompt
      : readBounded(
          String(v['prompt-file']),
          limit('PROMPT_BYTES'),
          '--prompt-file',
          'LONGCTX_MAX_PROMPT_BYTES',
        ).toString('utf8');
  const maxTokens = numberOption(v, 'max-tokens');
  if (maxTokens === undefined || !Number.isInteger(maxTokens) || maxTokens < 0)
    throw new InputError('--max-tokens N (a non-negative integer) is required');
  // Without --chunk: 512 across hosts and on the CPU, the planner's choice for the device otherwise (prefillChunkFor).
  const askedChunk = numberOption(v, 'chunk');
  if (askedChunk !== undefined && (!Number.isInteger(askedChunk) || askedChunk < 1))
    throw new InputError(`--chunk must be a positive integer, got ${askedChunk}`);
  const hostsChunk = askedChunk ?? DEFAULT_PREFILL_CHUNK;
  if (wantsHosts(v)) {
    const attention = typeof v.attention === 'string' ? v.attention : 'flash';
    const modelPath = required(v, 'model');
    const model = loadModel(modelPath);
    if (typeof v.rope === 'string') model.config = { ...model.config, rope: parseRopeSpec(v.rope) };
    const ids = promptTokens(model.tokenizer, prompt, !v['no-bos']);
    const spec = parseMethodSpec(attention);
    const run: RunShape = {
      promptTokens: ids.length,
      newTokens: maxTokens,
      attention: spec.name === 'star' ? attention : 'flash',
      schedule: scheduleFromSpec(spec.name === 'star' ? spec : parseMethodSpec('flash')),
      storage: 'f32',
      chunk: hostsChunk,
      allowOverflow: v['allow-overflow'] === true,
    };
    checkRunServed(model.config, run, model.source);
    return generateAcrossHostsCommand({ v, spec, modelPath, model, ids, maxTokens, chunk: hostsChunk });
  }
  const storage = (v.storage as string | undefined) ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  const backend = backendOption(v);
  if (storage === 'f16' && backend === 'cpu')
    throw new InputError(
      '--storage f16 is for WebGPU: the CPU backend keeps weights and the KV cache in f32 (drop --storage, or use --backend webgpu)',
    );
  const model = loadModel(required(v, 'model'));
  // RoPE context extension from the command line replaces what the model's config says.
  if (typeof v.rope === 'string') model.config = { ...model.config, rope: parseRopeSpec(v.rope) };
  const positions = typeof v.positions === 'string' ? parsePositionSpec(v.positions) : undefined;
  const positionMethod = positions && positions.kind !== 'none' ? formatPositionSpec(positions) : undefined;
  const given = typeof v.attention === 'string' ? v.attention : undefined;
  // With --session the file stays open while its caches restore (read layer by layer), then closes.
  const run = async (session?: LoadedSession) => {
    const attention = given ?? session?.header.attention ?? 'flash';
    const schedule = scheduleFromSpec(parseMethodSpec(attention));
    const star = schedule.methodFor(0).name === 'star';
    // After a saved context the prompt is appended to it: no BOS, and it may be empty.
    const context = session?.ids ?? [];
    const ids = session ? model.tokenizer.encode(prompt) : promptTokens(model.tokenizer, prompt, !v['no-bos']);
    const asked: Omit<RunShape, 'chunk'> = {
      promptTokens: context.length + ids.length,
      newTokens: maxTokens,
      attention,
      schedule,
      storage,
      allowOverflow: v['allow-overflow'] === true,
      positions: typeof v.positions === 'string' ? parsePositionSpec(v.positions) : undefined,
    };
    checkRunServed(model.config, asked, model.source);
    const device = await acquireDevice(backend);
    if (storage === 'f16' && device.backend === 'cpu')
      process.stderr.write('generate: no WebGPU adapter, so the CPU runs it in f32 (--storage f16 does not apply)\n');
    const chunk = askedChunk ?? prefillChunkFor(device, storage, model.config);
    const shape: RunShape = { ...asked, chunk };
    try {
      checkRunFits(device, model.config, shape);
    } catch (e) {
      device.destroy();
      throw e;
    }
    const runTokens = context.length + ids.length + maxTokens;
    const decoder = await createDecoder(device, model, schedule, {
      maxTokens: runTokens,
      chunk,
      storage,
      positions,
    });
    try {
      const c = model.config;
      process.stderr.write(
        `generate: ${model.source} (${c.architecture}, ${c.layers} layers, ${c.hiddenSize} wide) on ` +
          `${device.name}; attention: ${schedule.description}; prompt ${ids.length} tokens\n`,
      );
      let restored: Awaited<ReturnType<typeof restoreSession>> | undefined;
      if (session) {
        restored = await restoreSession(decoder, session, star ? context.length : chunk, prefillBar('session'));
        process.stderr.write(
          `generate: ${v.session}: ${context.length} tokens ${restored.from === 'caches' ? 'restored from its caches' : 'replayed'}` +
            (session.prefetch && restored.from === 'caches'
              ? ` (read layer by layer beside the restore: ${session.prefetch.readSeconds.toFixed(3)} s reading, ` +
                `${session.prefetch.waitSeconds.toFixed(3)} s waited for)`
              : '') +
            '\n',
        );
      }
      // --max-tokens 0 with --save-session: the prompt is prefilled to be saved.
      let prefilled: Float32Array | undefined;
      if (v['save-session'] !== undefined && maxTokens === 0)
        for (let at = 0; at < ids.length; at += star ? ids.length : chunk)
          prefilled = await decoder.forward(ids.slice(at, at + (star ? ids.length : chunk)));
      const counted = v.stats && device.gpu ? new CountingDecoder(decoder, device.gpu) : undefined;
      const r = await generate(counted ?? decoder, model.tokenizer, ids, {
        context: restored && { lastId: context[context.length - 1], logits: restored.logits },
        maxTokens,
        temperature: numberOption(v, 'temperature') ?? 0,
        topP: numberOption(v, 'top-p'),
        seed: numberOption(v, 'seed'),
        onText: (s) => process.stdout.write(s),
        // Progress on stderr for a long prompt (Star lays out its anchor from the whole prompt: one call).
        ...(star ? {} : { prefillSlice: chunk, onPrefillProgress: prefillBar('prefill') }),
      });
      process.stdout.write('\n');
      const rate = (n: number, s: number) => (s > 0 ? (n / s).toFixed(1) : '-');
      process.stderr.write(
        `generate: prefill ${ids.length} tokens in ${r.prefillSeconds.toFixed(3)} s (${rate(ids.length, r.prefillSeconds)} tokens/s); ` +
          `decode ${r.ids.length} tokens in ${r.decodeSeconds.toFixed(3)} s ` +
          `(${rate(Math.max(0, r.ids.length - 1), r.decodeSeconds)} tokens/s)` +
          `${r.stoppedAtEos ? '; stopped at EOS' : ''}; KV cache ${(decoder.cacheBytes / 2 ** 20).toFixed(2)} MiB\n`,
      );
      const last = r.logits ?? prefilled ?? restored?.logits;
      if (typeof v['save-session'] === 'string' && last) {
        const all = [...context, ...ids, ...r.ids];
        const saved = await writeSession(
          v['save-session'],
          model,
          { attention, positionMethod },
          decoder,
          all,
          last,
          runTokens,
        );
        process.stderr.write(
          `generate: saved ${decoder.position} tokens to ${v['save-session']} (${(saved.bytes / 2 ** 20).toFixed(2)} MiB, ` +
            `${saved.caches ? 'with the KV caches' : 'tokens only: replayed on load'})\n`,
        );
      }
      if (v.stats) {
        const plans = (decoder as { plans?: string[] }).plans ?? [];
        const groups = new Map<string, number[]>();
        plans.forEach((p, i) => groups.set(p, [...(groups.get(p) ?? []), i]));
        for (const [p, layers] of groups) process.stderr.write(`stats: layers ${layers.join(',')}: ${p}\n`);
        for (const m of (decoder as { matmulPlans?: string[] }).matmulPlans ?? [])
          process.stderr.write(`stats: ${m}\n`);
        if (counted) process.stderr.write(counted.summary(Math.ceil(ids.length / chunk)));
      }
    } finally {
      decoder.destroy();
      device.destroy();
    }
  };
  if (typeof v.session === 'string') return withSession(v.session, model, { attention: given, positionMethod }, run);
  return run();
}

/** Counts what each forward costs the host and the device: the first is the prefill, the rest decode steps. */
class CountingDecoder implements Decoder {
  private calls = 0;
  private prefill?: GpuCounters;
  private decode: GpuCounters = {
    hostReads: 0,
    hostReadBytes: 0,
    buffersCreated: 0,
    uniformsCreated: 0,
    bindGroupsCreated: 0,
    submits: 0,
    writes: 0,
    writesSkipped: 0,
  };

  constructor(
    private readonly inner: Decoder,
    private readonly gpu: GpuContext,
  ) {}

  get config() {
    return this.inner.config;
  }
  get position() {
    return this.inner.position;
  }
  get cacheBytes() {
    return this.inner.cacheBytes;
  }
  reset(): void {
    this.inner.reset();
  }
  destroy(): void {
    this.inner.destroy();
  }

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    const before = { ...this.gpu.counters };
    const logits = await this.inner.forward(tokens);
    const delta = Object.fromEntries(
      Object.entries(this.gpu.counters).map(([k, x]) => [k, x - before[k as keyof GpuCounters]]),
    ) as unknown as GpuCounters;
    if (this.calls++ === 0) this.prefill = delta;
    else for (const k of Object.keys(delta) as (keyof GpuCounters)[]) this.decode[k] += delta[k];
    return logits;
  }

  summary(chunks: number): string {
    const line = (c: GpuCounters, per: number) =>
      `${(c.hostReads / per).toFixed(2)} host reads (${(c.hostReadBytes / per).toFixed(0)} bytes), ` +
      `${(c.buffersCreated / per).toFixed(2)} buffers, ${(c.uniformsCreated / per).toFixed(2)} uniforms, ` +
      `${(c.bindGroupsCreated / per).toFixed(2)} bind groups created, ${(c.submits / per).toFixed(2)} submissions, ` +
      `${(c.writes / per).toFixed(2)} queue writes (${(c.writesSkipped / per).toFixed(2)} unchanged uniforms skipped)`;
    const steps = Math.max(0, this.calls - 1);
    return (
      (this.prefill ? `stats: prefill, per chunk (${chunks}): ${line(this.prefill, chunks)}\n` : '') +
      (steps ? `stats: per decoded token (${steps}): ${line(this.decode, steps)}\n` : '')
    );
  }
}
