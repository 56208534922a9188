// The peer harness in CI (issue 20): passkey-2k written to an ONNX graph (src/bench/peers/onnx-llama.ts, the
// GroupQueryAttention decoder with past KV), run by onnxruntime-web's wasm EP (ONNX Runtime's own CPU kernels),
// must generate the same 16 greedy tokens as longctx's CPU decoder from the same weights on 256-token prompts.
// The graph is written by our code, but every kernel that runs it (MatMul, RMSNorm, GQA with RoPE and the KV
// cache) is ONNX Runtime's, so a wrong graph or a wrong longctx both fail here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseMethodSpec } from '../src/attention/spec.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { llamaToOnnx } from '../src/bench/peers/onnx-llama.js';
import { OrtPeer } from '../src/bench/peers/ort-runner.js';
import { compareGreedy, tailPrompts } from '../src/bench/peers/peers-bench.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { loadModel } from '../src/model/load/load.js';

const DIR = fileURLToPath(new URL('../../test/fixtures/passkey-2k/', import.meta.url));

describe('peers: onnxruntime-web (wasm EP) beside longctx on passkey-2k', () => {
  const model = loadModel(DIR);
  const texts = readFileSync(`${DIR}cases-2k.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { prompt: string }).prompt);

  it('the first 16 greedy tokens agree on two 256-token prompts', async () => {
    const prompts = tailPrompts(texts.slice(0, 2), (s) => model.tokenizer.encode(s), 256, model.tokenizer.bosId);
    assert.equal(prompts[0].length, 256);
    const graph = llamaToOnnx(model, { dtype: 'f32', maxPositions: 256 + 16 });
    const peer = await OrtPeer.create(graph, 'wasm');
    const decoder = new CpuDecoder(model, scheduleFromSpec(parseMethodSpec('flash')), { maxTokens: 256 + 16 });
    try {
      const rows = await compareGreedy(decoder, peer, prompts, 16);
      for (const r of rows) {
        assert.equal(r.peer.length, 16);
        assert.deepEqual(r.peer, r.longctx, `first difference at ${r.firstDifference}, logit gap ${r.logitGap}`);
        // The passkey prompts end in "... The pass key for X is": the digits that follow are not one token repeated.
        assert.ok(new Set(r.longctx).size > 3, `degenerate output ${r.longctx}`);
      }
      assert.notDeepEqual(rows[0].longctx, rows[1].longctx, 'two prompts, two answers');
    } finally {
      decoder.destroy();
      await peer.release();
    }
  });

  it('a graph of the wrong dtype for the EP is refused with a typed error', async () => {
    const graph = llamaToOnnx(model, { dtype: 'f16', maxPositions: 8 });
    await assert.rejects(OrtPeer.create(graph, 'wasm'), { name: 'InputError' });
  });
});
