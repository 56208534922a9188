// Times the resident CCA and DSA layers (attention/layers/cca-gpu.ts, dsa-gpu.ts) as one layer of a model
// (Llama-3.2-1B's attention shape by default: 32 query heads, 8 KV heads, head dim 64, f16) at long contexts,
// beside causal flash attention over the same shape in the same run: prefill in chunks up to the context,
// then single-token decode steps (per layer, per token), with the host reads and GPU creations of the decode
// steps (both must be 0). One command on the GPU machine:
//   node dist/src/bench/resident-bench.js --contexts 32768,131072 [--chunk 4096] [--decode 64] [--json out.json]
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireGpu, type GpuContext } from '../runtime/webgpu.js';
import { CcaGpuLayer } from '../attention/layers/cca-gpu.js';
import { DsaGpuLayer } from '../attention/layers/dsa-gpu.js';
import type { LayerAttention } from '../attention/layer.js';
import { flashAttentionGpu } from '../attention/flash.js';
import { randomGpuBuffer } from './gpu-fill.js';
import type { DType } from '../tensor.js';

interface Shape {
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
}

interface Row {
  method: string;
  context: number;
  prefillMs: number;
  decodeMsPerToken: number;
  decodeHostReads: number;
  decodeCreations: number;
  cacheBytes: number;
  plan: string;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** The training-free indexer's layout without weights: 4 rotary pairs per KV head (half RoPE layout). */
function benchIndexer(s: Shape) {
  const pairs = 4;
  const channels = Array.from({ length: s.kvHeads }, (_, j) =>
    Int32Array.from({ length: 2 * pairs }, (_, c) => ((j + c) % pairs) + (c >= pairs ? s.headDim / 2 : 0)),
  );
  return { heads: s.kvHeads, dim: s.kvHeads * 2 * pairs, channels };
}

async function timeLayer(
  gpu: GpuContext,
  layer: LayerAttention<GPUBuffer>,
  s: Shape,
  context: number,
  chunk: number,
  decode: number,
): Promise<Omit<Row, 'method' | 'context'>> {
  const f16 = s.dtype === 'f16';
  const q = await randomGpuBuffer(gpu, s.heads * chunk * s.headDim, f16, 1, 'bench q');
  const k = await randomGpuBuffer(gpu, s.kvHeads * chunk * s.headDim, f16, 2, 'bench k');
  const v = await randomGpuBuffer(gpu, s.kvHeads * chunk * s.headDim, f16, 3, 'bench v');
  const out = await gpu.createBuffer(s.heads * chunk * s.headDim * 4, 'bench out');
  try {
    let start = 0;
    const t0 = performance.now();
    while (start < context) {
      const tokens = Math.min(chunk, context - start);
      await layer.forward({ q, k, v, out, start, tokens });
      start += tokens;
    }
    await gpu.idle();
    const prefillMs = performance.now() - t0;
    for (let i = 0; i < 2; i++) await layer.forward({ q, k, v, out, start: start++, tokens: 1 });
    await gpu.idle();
    const before = { ...gpu.counters };
    const t1 = performance.now();
    for (let i = 0; i < decode; i++) await layer.forward({ q, k, v, out, start: start++, tokens: 1 });
    await gpu.idle();
    const decodeMsPerToken = (performance.now() - t1) / decode;
    const c = gpu.counters;
    return {
      prefillMs,
      decodeMsPerToken,
      decodeHostReads: c.hostReads - before.hostReads,
      decodeCreations:
        c.buffersCreated +
        c.uniformsCreated +
        c.bindGroupsCreated -
        before.buffersCreated -
        before.uniformsCreated -
        before.bindGroupsCreated,
      cacheBytes: layer.cacheBytes,
      plan: layer.plan,
    };
  } finally {
    for (const b of [q, k, v, out]) gpu.release(b);
  }
}

/** Causal flash prefill over the whole context and one decode query over it (the same shape). */
async function timeFlash(gpu: GpuContext, s: Shape, context: number): Promise<Omit<Row, 'method' | 'context'>> {
  const f16 = s.dtype === 'f16';
  const bufs: GPUBuffer[] = [];
  const make = async (n: number, seed: number, label: string) => {
    bufs.push(await randomGpuBuffer(gpu, n, f16, seed, label));
    return bufs[bufs.length - 1];
  };
  try {
    const q = await make(s.heads * context * s.headDim, 1, 'flash q');
    const k = await make(s.kvHeads * context * s.headDim, 2, 'flash k');
    const v = await make(s.kvHeads * context * s.headDim, 3, 'flash v');
    const o = await gpu.createBuffer(s.heads * context * s.headDim * 4, 'flash o');
    const lse = await gpu.createBuffer(s.heads * context * 4, 'flash lse');
    bufs.push(o, lse);
    const run = async (queries: number) => {
      const shape = { ...s, queries, keys: context, causal: true, scale: 1 / Math.sqrt(s.headDim) };
      await flashAttentionGpu(gpu, { q, k, v, o, lse, shape, dtype: s.dtype });
      await gpu.idle();
    };
    await run(1);
    const t0 = performance.now();
    await run(context);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    for (let i = 0; i < 8; i++) await run(1);
    const decodeMsPerToken = (performance.now() - t1) / 8;
    return {
      prefillMs,
      decodeMsPerToken,
      decodeHostReads: 0,
      decodeCreations: -1,
      cacheBytes: 2 * s.kvHeads * context * s.headDim * (f16 ? 2 : 4),
      plan: 'flash (attention/flash.ts default variant; decode: one query row, no split-KV)',
    };
  } finally {
    bufs.forEach((b) => gpu.release(b));
  }
}

async function main(): Promise<void> {
  const gpu = await acquireGpu();
  if (!gpu) throw new Error('no WebGPU adapter');
  const s: Shape = {
    heads: Number(arg('heads', '32')),
    kvHeads: Number(arg('kv-heads', '8')),
    headDim: Number(arg('head-dim', '64')),
    dtype: arg('dtype', 'f16') as DType,
  };
  const contexts = arg('contexts', '32768,131072').split(',').map(Number);
  const chunk = Number(arg('chunk', '4096'));
  const decode = Number(arg('decode', '64'));
  const methods = arg('methods', 'flash,cca,dsa').split(',');
  const rows: Row[] = [];
  process.stderr.write(`device: ${gpu.adapterName}\n`);
  for (const context of contexts) {
    for (const method of methods) {
      const maxTokens = context + decode + 2;
      const opts = { ...s, maxTokens, maxChunk: chunk };
      let result: Omit<Row, 'method' | 'context'>;
      let spec = method;
      if (method === 'flash') result = await timeFlash(gpu, s, context);
      else {
        const layer =
          method === 'cca'
            ? await CcaGpuLayer.create(gpu, { ...opts, group: 16, window: 1024 })
            : await DsaGpuLayer.create(gpu, {
                ...opts,
                topk: 2048,
                precision: 'int8',
                sinks: 4,
                local: 64,
                indexer: benchIndexer(s),
              });
        spec = layer.spec;
        try {
          result = await timeLayer(gpu, layer, s, context, chunk, decode);
        } finally {
          layer.destroy();
        }
      }
      const row = { method: spec, context, ...result };
      rows.push(row);
      process.stderr.write(
        `${spec} @ ${context}: prefill ${row.prefillMs.toFixed(1)} ms, decode ${row.decodeMsPerToken.toFixed(3)} ms/token/layer, ` +
          `decode reads ${row.decodeHostReads}, creations ${row.decodeCreations}\n`,
      );
    }
  }
  console.log(`| method | context | prefill ms | decode ms/token (one layer) | decode reads | decode creations |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.method} | ${r.context} | ${r.prefillMs.toFixed(1)} | ${r.decodeMsPerToken.toFixed(3)} | ${r.decodeHostReads} | ${r.decodeCreations} |`,
    );
  const json = arg('json', '');
  if (json) writeFileSync(json, JSON.stringify({ device: gpu.adapterName, shape: s, chunk, decode, rows }, null, 2));
  gpu.destroy();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
