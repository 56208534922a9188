// `longctx generate`: text from a model. Only the generated text goes to stdout (ending with a newline,
// as llama2.c prints); progress and speed go to stderr.
import { readFileSync } from 'node:fs';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import { POSITIONS_USAGE, parsePositionSpec } from '../model/positions/position-method.js';
import { InputError } from '../errors.js';
import { parseMethodSpec } from '../attention/spec.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { acquireDevice } from '../runtime/device.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import { generate, promptTokens } from '../model/generation/generate.js';
import { loadModel } from '../model/load/load.js';
import { backendOption, numberOption, parse, required } from './args.js';

export const GENERATE_USAGE = `usage: longctx generate --model F (--prompt TEXT | --prompt-file F) --max-tokens N [--temperature T]
                        [--top-p P] [--seed S] [--backend cpu|webgpu|auto] [--attention SPEC] [--no-bos] [--chunk N]
                        [--storage f32|f16]
  F: a GGUF file (F32, F16, BF16, Q8_0 tensors) or a Hugging Face directory; llama, qwen2, mistral.
  Temperature 0 (default) is greedy.
  SPEC: any attend method for every layer (default flash), or hybrid:every=E,window=W for a layer schedule.
  The prompt starts with the model's BOS token unless --no-bos; an empty prompt is the BOS alone.
  --rope linear:factor=F | ntk:factor=F[,dynamic=1,original=N] | yarn:factor=F,original=N | llama3:factor=F,original=N,low=L,high=H
    RoPE context extension, replacing the model's own (read from config.json or GGUF metadata).
  ${POSITIONS_USAGE}
  --storage f16 (WebGPU): weights and KV cache in half precision, half the memory; default f32.`;

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
    positions: { type: 'string' },
  });
  if ((v.prompt === undefined) === (v['prompt-file'] === undefined))
    throw new InputError('give exactly one of --prompt TEXT and --prompt-file F');
  let prompt: string;
  try {
    prompt = typeof v.prompt === 'string' ? v.prompt : readFileSync(String(v['prompt-file']), 'utf8');
  } catch (e) {
    throw new InputError(`cannot read --prompt-file: ${(e as Error).message}`);
  }
  const maxTokens = numberOption(v, 'max-tokens');
  if (maxTokens === undefined || !Number.isInteger(maxTokens) || maxTokens < 0)
    throw new InputError('--max-tokens N (a non-negative integer) is required');
  const chunk = numberOption(v, 'chunk') ?? 512;
  if (!Number.isInteger(chunk) || chunk < 1) throw new InputError(`--chunk must be a positive integer, got ${chunk}`);
  const storage = (v.storage as string | undefined) ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  const schedule = scheduleFromSpec(parseMethodSpec(typeof v.attention === 'string' ? v.attention : 'flash'));
  const backend = backendOption(v);
  const model = loadModel(required(v, 'model'));
  // RoPE context extension from the command line replaces what the model's config says.
  if (typeof v.rope === 'string') model.config = { ...model.config, rope: parseRopeSpec(v.rope) };
  const ids = promptTokens(model.tokenizer, prompt, !v['no-bos']);
  const device = await acquireDevice(backend);
  const positions = typeof v.positions === 'string' ? parsePositionSpec(v.positions) : undefined;
  const decoder = await createDecoder(device, model, schedule, {
    maxTokens: ids.length + maxTokens,
    chunk,
    storage,
    positions,
  });
  try {
    const c = model.config;
    process.stderr.write(
      `generate: ${model.source} (${c.architecture}, ${c.layers} layers, ${c.hiddenSize} wide) on ${device.name}; attention: ${schedule.description}; prompt ${ids.length} tokens\n`,
    );
    const r = await generate(decoder, model.tokenizer, ids, {
      maxTokens,
      temperature: numberOption(v, 'temperature') ?? 0,
      topP: numberOption(v, 'top-p'),
      seed: numberOption(v, 'seed'),
      onText: (s) => process.stdout.write(s),
    });
    process.stdout.write('\n');
    const rate = (n: number, s: number) => (s > 0 ? (n / s).toFixed(1) : '-');
    process.stderr.write(
      `generate: prefill ${ids.length} tokens in ${r.prefillSeconds.toFixed(3)} s (${rate(ids.length, r.prefillSeconds)} tokens/s); ` +
        `decode ${r.ids.length} tokens in ${r.decodeSeconds.toFixed(3)} s (${rate(Math.max(0, r.ids.length - 1), r.decodeSeconds)} tokens/s)${r.stoppedAtEos ? '; stopped at EOS' : ''}; KV cache ${(decoder.cacheBytes / 2 ** 20).toFixed(2)} MiB\n`,
    );
  } finally {
    decoder.destroy();
    device.destroy();
  }
}
