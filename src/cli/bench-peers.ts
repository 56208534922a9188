// `longctx bench peers`: longctx beside onnxruntime-web (the engine under transformers.js in a browser) on the
// same weights in this process: greedy agreement on passkey-2k prompts, then prefill/decode speed and peak memory
// per context for both (src/bench/peers/). Writes peers.json, peers.md and SVG plots.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { acquireDevice } from '../runtime/device.js';
import { prefillChunkFor } from '../model/forward/create-decoder.js';
import { loadModel } from '../model/load/load.js';
import { randomModel } from '../model/load/random-model.js';
import type { LoadedModel } from '../model/types.js';
import {
  asPlotReport,
  benchModelCase,
  modelBenchMarkdown,
  modelDecoder,
  modelShape,
  type ModelBenchRow,
} from '../bench/model-bench.js';
import { llamaToOnnx } from '../bench/peers/onnx-llama.js';
import { OrtPeer, type OrtBackend } from '../bench/peers/ort-runner.js';
import {
  agreementMarkdown,
  benchPeerCase,
  compareGreedy,
  tailPrompts,
  type Agreement,
} from '../bench/peers/peers-bench.js';
import { formatTokens } from '../bench/report.js';
import { toSvgPlot } from '../bench/svg-plot.js';
import { backendOption, intList, numberOption, parse } from './args.js';

export const BENCH_PEERS_USAGE = `usage: longctx bench peers [--model DIR | --shape llama-3.2-1b|tiny [--layers N]] [--contexts 1K,4K,16K,32K]
                      [--decode 128] [--storage f16|f32] [--backend cpu|webgpu|auto] [--peer webgpu|wasm]
                      [--agree-model DIR --agree-cases FILE.jsonl [--agree-tokens 1024] [--agree-steps 16]]
                      [--budget-seconds 400] [--out-dir bench-out]
  The peer is onnxruntime-web on an ONNX graph written from the same weights (GroupQueryAttention, past KV);
  its wasm EP runs f32, its WebGPU EP the --storage type. Each engine gets half the budget; a context is skipped
  when the engine's last run predicts (quadratically) that it would not fit.`;

export async function benchPeersCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    shape: { type: 'string' },
    layers: { type: 'string' },
    contexts: { type: 'string' },
    decode: { type: 'string' },
    storage: { type: 'string' },
    backend: { type: 'string' },
    peer: { type: 'string' },
    'agree-model': { type: 'string' },
    'agree-cases': { type: 'string' },
    'agree-tokens': { type: 'string' },
    'agree-steps': { type: 'string' },
    'budget-seconds': { type: 'string' },
    'out-dir': { type: 'string' },
    'agree-only': { type: 'boolean' },
  });
  const device = await acquireDevice(backendOption(v));
  const onGpu = device.backend === 'webgpu';
  const peerBackend = String(v.peer ?? (onGpu ? 'webgpu' : 'wasm')) as OrtBackend;
  if (peerBackend !== 'webgpu' && peerBackend !== 'wasm') throw new InputError(`--peer must be webgpu or wasm`);
  const storage = String(v.storage ?? (onGpu ? 'f16' : 'f32'));
  if (storage !== 'f16' && storage !== 'f32') throw new InputError(`--storage must be f16 or f32, got '${storage}'`);
  const peerDtype = peerBackend === 'wasm' ? 'f32' : storage;
  const contexts = intList(v, 'contexts', [1024, 4096, 16384, 32768]).sort((a, b) => a - b);
  const decode = numberOption(v, 'decode') ?? 128;
  const budget = (numberOption(v, 'budget-seconds') ?? 400) * 1000;
  const outDir = String(v['out-dir'] ?? 'bench-out');
  mkdirSync(outDir, { recursive: true });
  const log = (s: string) => process.stderr.write(`bench peers: ${s}\n`);
  const report: { device: string; peer: string; agreement: Agreement[]; rows: ModelBenchRow[]; model?: string } = {
    device: device.name,
    peer: `onnxruntime-web ${peerBackend} EP (${peerDtype})`,
    agreement: [],
    rows: [],
  };
  const flush = () => {
    writeFileSync(join(outDir, 'peers.json'), JSON.stringify(report, null, 2) + '\n');
    const title = `longctx and ${report.peer}, ${report.model ?? ''}`;
    let md = modelBenchMarkdown(title, device.name, report.rows);
    if (report.agreement.length) md += '\n' + agreementMarkdown('Greedy agreement (passkey-2k)', report.agreement);
    writeFileSync(join(outDir, 'peers.md'), md);
    for (const what of ['decode', 'prefill'] as const)
      writeFileSync(
        join(outDir, `peers-${what}.svg`),
        toSvgPlot(asPlotReport(title, device.name, report.rows, what), { y: 'ms', title: `${title}: ${what} ms` }),
      );
    writeFileSync(
      join(outDir, 'peers-memory.svg'),
      toSvgPlot(asPlotReport(title, device.name, report.rows, 'decode'), {
        y: 'peakBytes',
        title: `${title}: peak memory`,
      }),
    );
  };

  if (typeof v['agree-model'] === 'string') {
    if (typeof v['agree-cases'] !== 'string') throw new InputError('--agree-model needs --agree-cases FILE.jsonl');
    const model = loadModel(v['agree-model']);
    const texts = readFileSync(v['agree-cases'], 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => String((JSON.parse(l) as { prompt: string }).prompt));
    const tokens = numberOption(v, 'agree-tokens') ?? 1024;
    const steps = numberOption(v, 'agree-steps') ?? 16;
    const prompts = tailPrompts(texts, (s) => model.tokenizer.encode(s), tokens, model.tokenizer.bosId ?? 0);
    const graph = llamaToOnnx(model, { dtype: peerDtype, maxPositions: tokens + steps });
    const peer = await OrtPeer.create(graph, peerBackend);
    const decoder = await modelDecoder(device, model, 'flash', tokens + steps, { storage, chunk: 512 });
    report.agreement = await compareGreedy(decoder, peer, prompts, steps);
    decoder.destroy();
    await peer.release();
    for (const a of report.agreement)
      log(
        `agreement at ${a.promptTokens} tokens: ${a.firstDifference ?? steps}/${steps} same` +
          (a.logitGap === undefined ? '' : `, gap ${a.logitGap.toFixed(4)}`),
      );
    flush();
  }

  if (v['agree-only']) return;
  const model: LoadedModel =
    typeof v.model === 'string'
      ? loadModel(v.model)
      : randomModel(modelShape(String(v.shape ?? 'llama-3.2-1b'), { layers: numberOption(v, 'layers') }), 1);
  report.model = model.source;
  const vocab = model.config.vocabSize;
  const maxTokens = contexts[contexts.length - 1] + decode + 2;
  const sweep = async (
    name: string,
    run: (context: number) => Promise<ModelBenchRow>,
    base: Omit<ModelBenchRow, 'context' | 'status'>,
  ) => {
    const deadline = performance.now() + budget / 2;
    let last: ModelBenchRow | undefined;
    for (const context of contexts) {
      const left = (deadline - performance.now()) / 1000;
      const spent = last ? (last.prefillSeconds ?? 0) + (last.decodeSteps ?? 0) / (last.decodeTokensPerSecond ?? 1) : 0;
      const predicted = last ? spent * (context / last.context) ** 2 : 0;
      if (last && last.status !== 'ok') {
        report.rows.push({ ...base, context, status: 'skipped', note: `a shorter context failed` });
      } else if (predicted > left) {
        report.rows.push({
          ...base,
          context,
          status: 'skipped',
          note: `predicted ${predicted.toFixed(0)} s > ${left.toFixed(0)} s left`,
        });
      } else {
        last = await run(context);
        report.rows.push(last);
        log(
          `${name} ${formatTokens(context)}: ${last.status} prefill ${last.prefillTokensPerSecond?.toFixed(0)} tok/s, ` +
            `decode ${last.decodeTokensPerSecond?.toFixed(1)} tok/s${last.note ? ` (${last.note})` : ''}`,
        );
      }
      flush();
    }
  };

  // The prefill chunk a user's run takes on this device (2048 where the matmuls run on tensor cores, else 512).
  const chunk = prefillChunkFor(device, storage, model.config);
  log(`longctx prefill chunk ${chunk} (this device's default)`);
  const decoder = await modelDecoder(device, model, 'flash', maxTokens, { storage, chunk });
  await decoder.forward(Array.from({ length: Math.min(maxTokens - 4, 600) }, (_, i) => (i * 13 + 5) % vocab));
  await sweep(
    'longctx',
    (context) => benchModelCase(device, decoder, { method: 'flash', context, decode, storage, chunk }),
    {
      source: 'longctx',
      method: 'flash',
      backend: device.name,
      storage: onGpu ? storage : 'f32',
    },
  );
  decoder.destroy();

  const t0 = performance.now();
  const graph = llamaToOnnx(model, { dtype: peerDtype, maxPositions: maxTokens });
  log(
    `ONNX graph written in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(graph.data.byteLength / 2 ** 20).toFixed(0)} MiB of weights)`,
  );
  let peer: OrtPeer | undefined;
  try {
    peer = await OrtPeer.create(graph, peerBackend);
    await peer.greedy([1, 2, 3], 2);
  } catch (e) {
    for (const context of contexts)
      report.rows.push({
        source: 'onnxruntime-web',
        method: 'GroupQueryAttention',
        backend: peerBackend,
        storage: peerDtype,
        context,
        status: 'error',
        note: `session: ${String((e as Error).message)
          .split('\n')[0]
          .slice(0, 200)}`,
      });
    flush();
    return;
  }
  const p = peer;
  await sweep('onnxruntime-web', (context) => benchPeerCase(p, vocab, context, decode), {
    source: 'onnxruntime-web',
    method: 'GroupQueryAttention',
    backend: peerBackend,
    storage: peerDtype,
  });
  await p.release();
  log(`results in ${outDir}`);
}
