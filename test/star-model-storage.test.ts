// The storage of a model across hosts, refused where it cannot apply (no GPU needed): --storage f16 with CPU
// hosts (`generate --hosts --backend cpu`, `longctx host --backend cpu`) and an unknown storage each give one
// typed line before any host or server starts; the model's hash names its storage, so hosts of different
// storage never pass as the same model. (f16 runs on WebGPU hosts: star-model-gpu.test.ts.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { modelHash } from '../src/cluster/star-model-hash.js';
import { loadModel } from '../src/model/load/load.js';
import { FIXTURE_GGUF } from './model-support.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const longctx = (args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
const generate = ['generate', '--model', FIXTURE_GGUF, '--prompt', 'Once', '--attention', 'star:block=4,anchor=2'];

function refused(args: string[], pattern: RegExp) {
  const r = longctx(args);
  assert.equal(r.status, 2, `exit status ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /^generate: hosts: /m, 'no host was started');
}

describe('--storage for a model across hosts', () => {
  test('generate --hosts 2 --backend cpu --storage f16 is refused with one InputError', () => {
    refused(
      [...generate, '--max-tokens', '2', '--hosts', '2', '--backend', 'cpu', '--storage', 'f16'],
      /^longctx: InputError: --storage f16 is for WebGPU hosts/,
    );
  });

  test('generate --hosts 2 --storage f8 is refused with one InputError', () => {
    refused(
      [...generate, '--max-tokens', '2', '--hosts', '2', '--storage', 'f8'],
      /^longctx: InputError: --storage must be/,
    );
  });

  test('longctx host --backend cpu --storage f16 is refused with one InputError before connecting', () => {
    refused(
      ['host', '--nats', 'nats://127.0.0.1:1', '--token', 't', '--backend', 'cpu', '--storage', 'f16'],
      /^longctx: InputError: --storage f16 is for WebGPU/,
    );
  });

  test("the model's hash names its storage", () => {
    const m = loadModel(FIXTURE_GGUF);
    assert.equal(modelHash(m), modelHash(m, 'f32'));
    assert.notEqual(modelHash(m, 'f16'), modelHash(m, 'f32'));
  });
});
