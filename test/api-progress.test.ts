// Progress on stderr: RateBar (a bar with rate and ETA redrawn on a terminal, throttled plain lines
// otherwise), the load and prefill reporters of the CLI, and generate()'s sliced prefill that `longctx generate`
// reports (a prompt over 2048 tokens; the wiring is tested here on a short one).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateBar } from '../src/bench/progress.js';
import { loadProgress, prefillBar, prefillProgress } from '../src/cli/progress-report.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';
import { generate, promptTokens } from '../src/model/generation/generate.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { cpuDevice } from '../src/runtime/device.js';
import { FIXTURE_GGUF } from './model-support.js';

function fakeStream(isTTY: boolean): { out: string[]; stream: NodeJS.WriteStream } {
  const out: string[] = [];
  const stream = { isTTY, write: (s: string) => out.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { out, stream };
}

describe('progress', () => {
  it('plain lines when not a terminal: at most one per interval, always the last, with rate and ETA', () => {
    const { out, stream } = fakeStream(false);
    let t = 0;
    const bar = new RateBar(1000, 'prefill', { unit: 'tokens', stream, now: () => t, lineIntervalMs: 2000 });
    for (let done = 100; done <= 1000; done += 100) {
      t += 500; // 100 tokens every 0.5 s: 200 tokens/s
      bar.update(done);
    }
    assert.ok(out.every((s) => s.endsWith('\n') && !s.includes('\r')));
    assert.equal(out.length, 4, out.join('')); // t = 0.5 s (first), 2.5, 4.5, and the last at 5 s
    assert.match(out[0], /^prefill \[##-{18}\] 100\/1000 tokens 200\.0 tokens\/s ETA 4\.5 s\n$/);
    assert.match(out.at(-1)!, /^prefill \[#{20}\] 1000\/1000 tokens 200\.0 tokens\/s\n$/);
  });

  it('a bar redrawn in place on a terminal, ending with a newline', () => {
    const { out, stream } = fakeStream(true);
    let t = 0;
    const bar = new RateBar(4 * 2 ** 20, 'load', { unit: 'B', stream, now: () => t });
    t = 1000;
    bar.update(2 ** 20);
    t = 2000;
    bar.update(4 * 2 ** 20);
    assert.ok(out[0].startsWith('\r') && out[1].startsWith('\r'));
    assert.match(out[0], /load \[#{5}-{15}\] 1\.0\/4\.0 MiB 1\.0 MiB\/s ETA 3\.0 s/);
    assert.equal(out.at(-1), '\n');
  });

  it('the CLI reporters: nothing for a model read at once or a short prompt, a bar otherwise', () => {
    const { out, stream } = fakeStream(false);
    const load = loadProgress('load', stream);
    load({ phase: 'read', loadedBytes: 10, totalBytes: 10 });
    load({ phase: 'parse', loadedBytes: 10, totalBytes: 10 });
    const prefill = prefillProgress('prefill', 2048, stream);
    prefill({ tokens: 100, totalTokens: 100, tokensPerSecond: 0, etaSeconds: 0 });
    assert.equal(out.length, 0);
    const big = loadProgress('load', stream);
    big({ phase: 'read', loadedBytes: 64 * 2 ** 20, totalBytes: 200 * 2 ** 20 });
    big({ phase: 'read', loadedBytes: 200 * 2 ** 20, totalBytes: 200 * 2 ** 20 });
    assert.equal(out.length, 2);
    assert.match(out[1], /^load \[#{20}\] 200\.0\/200\.0 MiB/);
  });

  it("generate's sliced prefill reports each slice and gives the same ids as one call", async () => {
    const model = loadGguf(FIXTURE_GGUF);
    const ids = promptTokens(
      model.tokenizer,
      'Once upon a time, there was a little girl named Lily. She loved to play.',
    );
    const run = async (slice?: number) => {
      const { out, stream } = fakeStream(false);
      const decoder = await createDecoder(cpuDevice, model, uniformSchedule('flash'), { maxTokens: ids.length + 8 });
      const r = await generate(decoder, model.tokenizer, ids, {
        maxTokens: 8,
        temperature: 0,
        prefillSlice: slice,
        onPrefillProgress: slice ? prefillBar('prefill', 0, stream) : undefined,
      });
      return { ids: r.ids, out };
    };
    const whole = await run();
    const sliced = await run(8);
    assert.deepEqual(sliced.ids, whole.ids);
    assert.ok(sliced.out.length >= 1);
    assert.match(
      sliced.out.at(-1)!,
      new RegExp(`^prefill \\[#{20}\\] ${ids.length}/${ids.length} tokens [\\d.]+ tokens/s\\n$`),
    );
  });
});
