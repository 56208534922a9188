// `longctx bench model`: prefill and decode of a random-weight model of a named shape, per method and
// context, within a time budget (a context is skipped when the last one predicts it would not fit);
// writes model.json, model.md and SVG plots, with a progress line per run on stderr.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { acquireDevice } from '../runtime/device.js';
import { prefillChunkFor } from '../model/forward/create-decoder.js';
import { RANDOM_WEIGHTS, type RandomWeights, randomModel } from '../model/load/random-model.js';
import {
  asPlotReport,
  benchModelCase,
  modelBenchMarkdown,
  modelDecoder,
  modelShape,
  prefillGrowth,
  type ModelBenchRow,
} from '../bench/model-bench.js';
import { ProgressBar } from '../bench/progress.js';
import { GpuProfiler } from '../runtime/gpu-profile.js';
import { formatTokens } from '../bench/report.js';
import { toSvgPlot } from '../bench/svg-plot.js';
import { backendOption, intList, numberOption, parse } from './args.js';

export const BENCH_MODEL_USAGE = `usage: longctx bench model [--shape llama-3.2-1b|tiny] [--layers N] [--hidden N] [--heads N] [--kv-heads N]
                      [--head-dim N] [--intermediate N] [--vocab N] [--contexts 4K,32K,128K] [--method SPEC]...
                      [--decode 128] [--chunk N] [--storage f16|f32] [--weights f16|f32|q4_0|q4_k|q5_k|q6_k]
                      [--budget-seconds 480]
                      [--backend cpu|webgpu|auto] [--reference torch.json] [--out-dir bench-out] [--title T]
                      [--batch-passes N] [--profile]
  A random-weight model of the shape (overrides apply on top); per method, contexts run from the shortest
  and one is skipped when the last run predicts it would pass the remaining budget. --batch-passes: passes per
  submission of a forward pass on WebGPU (runtime/submit-batch.ts; default 12; 1 submits every pass).
  --chunk: prefill rows per step (default 2048 where the matmuls run on tensor cores, else 512).
  --profile (WebGPU with timestamp queries): each kernel's GPU time in the prefill and per decoded token, in
  model.md and model.json (one timed pass per dispatch, so a profiled run's tokens/s are below a plain run's).
  --weights: the layers' matrices encoded as f16 or a llama.cpp block format (default f32: converted to the
  storage dtype on upload); WebGPU keeps the block formats quantised and the report gives the weight bytes.`;

export async function benchModelCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    shape: { type: 'string' },
    layers: { type: 'string' },
    hidden: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    intermediate: { type: 'string' },
    vocab: { type: 'string' },
    contexts: { type: 'string' },
    method: { type: 'string', multiple: true },
    decode: { type: 'string' },
    'batch-passes': { type: 'string' },
    chunk: { type: 'string' },
    storage: { type: 'string' },
    weights: { type: 'string' },
    'budget-seconds': { type: 'string' },
    backend: { type: 'string' },
    reference: { type: 'string' },
    'out-dir': { type: 'string' },
    title: { type: 'string' },
    profile: { type: 'boolean' },
  });
  const config = modelShape(String(v.shape ?? 'llama-3.2-1b'), {
    layers: numberOption(v, 'layers'),
    hiddenSize: numberOption(v, 'hidden'),
    heads: numberOption(v, 'heads'),
    kvHeads: numberOption(v, 'kv-heads'),
    headDim: numberOption(v, 'head-dim'),
    intermediateSize: numberOption(v, 'intermediate'),
    vocabSize: numberOption(v, 'vocab'),
  });
  const contexts = intList(v, 'contexts', [4096, 32768, 131072]).sort((a, b) => a - b);
  const methods = (v.method as unknown as string[] | undefined) ?? ['flash', 'window:left=1024'];
  const decode = numberOption(v, 'decode') ?? 128;
  const askedChunk = numberOption(v, 'chunk');
  if (askedChunk !== undefined && (!Number.isInteger(askedChunk) || askedChunk < 1))
    throw new InputError('--chunk must be a positive integer');
  const batchPasses = numberOption(v, 'batch-passes');
  if (batchPasses !== undefined && (!Number.isInteger(batchPasses) || batchPasses < 1))
    throw new InputError('--batch-passes must be a positive integer');
  const storage = String(v.storage ?? 'f16');
  if (storage !== 'f16' && storage !== 'f32') throw new InputError(`--storage must be f16 or f32, got '${storage}'`);
  const weights = String(v.weights ?? 'f32') as RandomWeights;
  if (!RANDOM_WEIGHTS.includes(weights))
    throw new InputError(`--weights must be one of ${RANDOM_WEIGHTS.join(', ')}, got '${weights}'`);
  const deadline = performance.now() + (numberOption(v, 'budget-seconds') ?? 480) * 1000;
  const outDir = String(v['out-dir'] ?? 'bench-out');
  const reference: ModelBenchRow[] = [];
  if (typeof v.reference === 'string') {
    try {
      const rows = (JSON.parse(readFileSync(v.reference, 'utf8')) as { rows: Array<Record<string, number | string>> })
        .rows;
      for (const r of rows)
        reference.push({
          source: 'transformers',
          method: String(r.method),
          backend: 'cuda',
          storage: 'f16',
          context: Number(r.length),
          status: 'ok',
          prefillSeconds: Number(r.prefillSeconds),
          prefillTokensPerSecond: Number(r.prefillTokensPerSecond),
          decodeSteps: Number(r.decodeSteps),
          decodeTokensPerSecond: Number(r.decodeTokensPerSecond),
          peakBytes: r.peakBytes === undefined ? null : Number(r.peakBytes),
        });
    } catch (e) {
      throw new InputError(`--reference ${v.reference}: ${(e as Error).message}`);
    }
  }

  const device = await acquireDevice(backendOption(v));
  if (batchPasses !== undefined) device.gpu?.setBatchPasses(batchPasses);
  // Without --chunk, what a user's run takes on this device (2048 where the matmuls run on tensor cores, else 512).
  const chunk = askedChunk ?? prefillChunkFor(device, storage, config);
  process.stderr.write(
    `bench model: prefill chunk ${chunk}${askedChunk === undefined ? " (this device's default)" : ''}\n`,
  );
  let profiler: GpuProfiler | undefined;
  if (v.profile) {
    if (!device.gpu) {
      device.destroy();
      throw new InputError('--profile needs the WebGPU backend (it times kernels by GPU timestamps)');
    }
    profiler = new GpuProfiler(device.gpu.device);
  }
  // What the matrices are on a GPU: the storage dtype, unless a block format stays quantised (the CPU reads the file's).
  const held = device.gpu && (weights === 'f32' || weights === 'f16') ? storage : weights;
  const t0 = performance.now();
  const model = randomModel(config, 1, weights);
  process.stderr.write(`bench model: ${model.source} built in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const rows: ModelBenchRow[] = [];
  const title = String(
    v.title ??
      `Model ${config.layers} layers x ${config.hiddenSize} (${v.shape ?? 'llama-3.2-1b'} shape), ${storage}` +
        (weights === 'f32' ? '' : `, ${weights} weights`),
  );
  mkdirSync(outDir, { recursive: true });
  // Written after every run, so that a run cut short by its caller's timeout keeps what it measured.
  const flush = () => {
    writeFileSync(
      join(outDir, 'model.json'),
      JSON.stringify({ title, device: device.name, config, rows, reference }, null, 2) + '\n',
    );
    writeFileSync(join(outDir, 'model.md'), modelBenchMarkdown(title, device.name, rows, reference));
    const all = [...rows, ...reference];
    const plot = (file: string, report: ReturnType<typeof asPlotReport>, y: 'ms' | 'peakBytes', what: string) =>
      writeFileSync(join(outDir, file), toSvgPlot(report, { y, title: `${title}: ${what}` }));
    plot('model-decode.svg', asPlotReport(title, device.name, all, 'decode'), 'ms', 'ms per decoded token');
    plot('model-prefill.svg', asPlotReport(title, device.name, all, 'prefill'), 'ms', 'prefill ms');
    plot('model-memory.svg', asPlotReport(title, device.name, rows, 'decode'), 'peakBytes', 'peak device memory');
  };
  const bar = new ProgressBar(methods.length * contexts.length, `bench model on ${device.name}`);
  try {
    for (const method of methods) {
      let last: ModelBenchRow | undefined;
      const skip = (context: number, note: string) => {
        rows.push({
          source: 'longctx',
          method,
          backend: device.name,
          storage,
          weights,
          context,
          status: 'skipped',
          note,
        });
        flush();
        bar.tick(`${method} ${formatTokens(context)}: skipped (${note})`);
      };
      let decoder: Awaited<ReturnType<typeof modelDecoder>> | undefined;
      try {
        decoder = await modelDecoder(device, model, method, contexts[contexts.length - 1] + decode, {
          storage,
          chunk,
        });
      } catch (e) {
        for (const c of contexts) skip(c, (e as Error).message.split('\n')[0].slice(0, 160));
        continue;
      }
      try {
        // Compile every pipeline the runs use (prefill chunks, ring packing, split-KV decoding) before timing.
        const warm = Math.min(contexts[contexts.length - 1], chunk + 300);
        await decoder.forward(Array.from({ length: warm }, (_, i) => (i * 13 + 5) % config.vocabSize));
        for (let i = 0; i < 2; i++) await decoder.forward([i + 1]);
        // Installed after the warm-up, so that compiling pipelines is not profiled.
        profiler?.install();
        for (const context of contexts) {
          const left = (deadline - performance.now()) / 1000;
          const predicted =
            last?.prefillSeconds !== undefined
              ? last.prefillSeconds * (context / last.context) ** prefillGrowth(method) +
                decode / (last.decodeTokensPerSecond ?? 1)
              : 0;
          if (last && last.status !== 'ok') skip(context, 'a shorter context failed');
          else if (left <= 0 || predicted > left)
            skip(context, `predicted ${predicted.toFixed(0)} s > ${left.toFixed(0)} s left`);
          else {
            last = {
              ...(await benchModelCase(device, decoder, { method, context, decode, storage, chunk }, profiler)),
              weights: held,
            };
            rows.push(last);
            flush();
            bar.tick(
              `${method} ${formatTokens(context)}: ` +
                (last.status === 'ok'
                  ? `prefill ${last.prefillTokensPerSecond!.toFixed(0)} tok/s, ` +
                    `decode ${last.decodeTokensPerSecond!.toFixed(1)} tok/s`
                  : `${last.status} ${last.note ?? ''}`),
            );
          }
        }
      } finally {
        profiler?.uninstall();
        decoder.destroy();
      }
    }
  } finally {
    bar.done();
    profiler?.destroy();
    device.destroy();
  }
  flush();
  const md = modelBenchMarkdown(title, device.name, rows, reference);
  process.stdout.write(md);
  process.stderr.write(`bench model: wrote ${outDir}/model.{json,md} and three SVG plots\n`);
}
