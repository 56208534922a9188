// The CLI over a table of bad inputs (issue 14's cases): each must fail as one typed line on stderr, with
// exit 2 for input and 1 for the device or host, and never an internal error or a stack trace. Also: --help
// on every subcommand, and canServe's verdicts.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMethodSpec } from '../src/attention/spec.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { encodeNpy, writeNpy } from '../src/io/npy.js';
import { canServe } from '../src/model/load/can-serve.js';
import { formatCount } from '../src/model/plan.js';
import { parseGguf } from '../src/model/load/gguf-reader.js';
import type { ModelConfig } from '../src/model/types.js';
import { randomNormal, tensor } from '../src/tensor.js';
import { buildGguf, metaValue, type BuilderTensor, type MetaValue } from './gguf-builder.js';
import { safetensorsBytes, tinyConfigJson, tinyTensors, tinyTokenizerJson, writeTinyModel } from './hf-fixture.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-bad-'));
const at = (name: string) => join(dir, name);
const STORIES = fileURLToPath(new URL('../../test/fixtures/stories260K/stories260K.gguf', import.meta.url));

// .npy inputs: good ones, and headers numpy would never write.
writeNpy(at('q.npy'), randomNormal([2, 8, 16], 1));
writeNpy(at('k.npy'), randomNormal([2, 8, 16], 2));
writeNpy(at('wide.npy'), randomNormal([1, 2, 65536], 3));
// Head dim 4100: within the model limit, past what CCA's and DSA's WebGPU kernels can hold (checked before compiling).
writeNpy(at('d4100.npy'), randomNormal([1, 4, 4100], 4));
writeNpy(at('iq.npy'), randomNormal([1, 4, 16], 5));
writeNpy(at('ik.npy'), randomNormal([4, 16], 6));
writeNpy(at('iw.npy'), tensor([4, 1], 'f32', new Float32Array(4).fill(1)));
function npyWithHeader(name: string, dict: string, dataBytes: number): string {
  let header = dict;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + dataBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  writeFileSync(at(name), out);
  return at(name);
}
const npyDict = (shape: string, tail = '') => `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }${tail}`;
const npyCases: Array<[string, string]> = [
  ['double-comma', npyWithHeader('s1.npy', npyDict('(2,,8,16)'), 2 * 8 * 16 * 4)],
  ['hex', npyWithHeader('s2.npy', npyDict('(0x2, 8, 16)'), 2 * 8 * 16 * 4)],
  ['float', npyWithHeader('s3.npy', npyDict('(2.0, 8, 16)'), 2 * 8 * 16 * 4)],
  ['trailing junk', npyWithHeader('s4.npy', npyDict('(2, 8, 16)', 'junk'), 2 * 8 * 16 * 4)],
];
const good = encodeNpy(tensor([2, 8, 16], 'f32', new Float32Array(256)));
writeFileSync(at('long.npy'), Buffer.concat([good, Buffer.alloc(100)]));

// GGUF variants of stories260K: metadata or tensors changed, rebuilt by the test builder.
const stories = readFileSync(STORIES);
const parsed = parseGguf(stories, 'stories260K.gguf');
function ggufVariant(
  name: string,
  meta: (m: Array<[string, MetaValue]>) => Array<[string, MetaValue]>,
  tensors: (t: BuilderTensor[]) => BuilderTensor[] = (t) => t,
): string {
  const m = [...parsed.metadata].map(([k, v]) => [k, metaValue(v)] as [string, MetaValue]);
  const t = parsed.tensors.map((x) => ({
    name: x.name,
    dims: x.dims,
    type: x.type,
    data: new Uint8Array(stories.subarray(x.offset, x.offset + x.byteLength)),
  }));
  writeFileSync(at(name), buildGguf(meta(m), tensors(t)));
  return at(name);
}
const setMeta = (key: string, value: MetaValue) => (m: Array<[string, MetaValue]>) =>
  m.map(([k, v]) => [k, k === key ? value : v] as [string, MetaValue]);
const fillTensor = (name: string, value: number) => (ts: BuilderTensor[]) =>
  ts.map((t) =>
    t.name === name ? { ...t, data: new Uint8Array(new Float32Array(t.data.length / 4).fill(value).buffer) } : t,
  );
const EPS = 'llama.attention.layer_norm_rms_epsilon';
const gguf = {
  eps: ggufVariant('eps.gguf', setMeta(EPS, { type: 'f32', value: 0 })),
  theta: ggufVariant('theta.gguf', (m) => [...m, ['llama.rope.freq_base', { type: 'f32', value: -1 }]]),
  ropeFactor: ggufVariant('factor.gguf', (m) => [
    ...m,
    ['llama.rope.scaling.type', { type: 'string', value: 'linear' }],
    ['llama.rope.scaling.factor', { type: 'f32', value: -2 }],
  ]),
  alignment: ggufVariant('align.gguf', (m) => [...m, ['general.alignment', { type: 'string', value: '32' }]]),
  duplicateKey: ggufVariant('dupkey.gguf', (m) => [...m, [EPS, { type: 'f32', value: 1e-5 }]]),
  duplicateTensor: ggufVariant(
    'duptensor.gguf',
    (m) => m,
    (ts) => [...ts, { ...ts.find((t) => t.name === 'blk.0.attn_q.weight')! }],
  ),
  nanWeight: ggufVariant('nan.gguf', (m) => m, fillTensor('blk.2.attn_k.weight', Number.NaN)),
  hugeWeight: ggufVariant('huge.gguf', (m) => m, fillTensor('blk.0.ffn_down.weight', 3e38)),
};

// Hugging Face directories with one thing wrong each.
const made: string[] = [dir];
after(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
function hfVariant(change: (dir: string) => void): string {
  const { dir: d } = writeTinyModel();
  made.push(d);
  change(d);
  return d;
}
const writeJson = (d: string, name: string, json: unknown) => writeFileSync(join(d, name), JSON.stringify(json));
const tokenizerWith = (change: (t: Record<string, any>) => void) => (d: string) => {
  const t = tinyTokenizerJson() as Record<string, any>;
  change(t);
  writeJson(d, 'tokenizer.json', t);
};
const hf = {
  layers: hfVariant((d) => writeJson(d, 'config.json', { ...tinyConfigJson(), num_hidden_layers: 1e9 })),
  eps: hfVariant((d) => writeJson(d, 'config.json', { ...tinyConfigJson(), rms_norm_eps: 0 })),
  vocabList: hfVariant(tokenizerWith((t) => (t.model.vocab = [1, 2, 3]))),
  duplicateIds: hfVariant(
    tokenizerWith((t) => {
      const keys = Object.keys(t.model.vocab);
      t.model.vocab[keys[1]] = t.model.vocab[keys[0]];
    }),
  ),
  addedPast: hfVariant(tokenizerWith((t) => (t.added_tokens = [{ id: 99999, content: '<x>', special: true }]))),
  safetensorsDir: hfVariant((d) => {
    rmSync(join(d, 'model.safetensors'));
    mkdirSync(join(d, 'model.safetensors'));
  }),
  headerShort: hfVariant((d) => {
    const bytes = safetensorsBytes(tinyTensors());
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, view.getBigUint64(0, true) - 1n, true);
    writeFileSync(join(d, 'model.safetensors'), bytes);
  }),
};
symlinkSync('/dev/zero', at('zero.gguf')); // a device named as a model: stopped at its first bytes, not at 4 GiB
writeFileSync(at('long-prompt.txt'), 'Once upon a time there was a little dog. '.repeat(300));

const attend = (q: string, method: string, ...more: string[]) => [
  'attend',
  '--q',
  q,
  '--k',
  q.endsWith('wide.npy') || q.endsWith('d4100.npy') ? q : at('k.npy'),
  '--v',
  q.endsWith('wide.npy') || q.endsWith('d4100.npy') ? q : at('k.npy'),
  '--method',
  method,
  '--out',
  at('o.npy'),
  ...more,
];
const generate = (model: string, ...more: string[]) => [
  'generate',
  '--model',
  model,
  '--prompt',
  'Once',
  '--max-tokens',
  '4',
  '--backend',
  'cpu',
  ...more,
];
const cpu = ['--backend', 'cpu'];

/** [name, args, exit code, message]. */
const CASES: Array<[string, string[], 1 | 2, RegExp]> = [
  // CLI habits
  ['negative --max-tokens', generate(STORIES, '--max-tokens', '-1'), 2, /--max-tokens must be an integer/],
  ['--seed 1.5', generate(STORIES, '--seed', '1.5'), 2, /--seed must be an integer/],
  ['--temperature 1e9', generate(STORIES, '--temperature', '1e9'), 2, /--temperature must be a number from 0/],
  ['--scale 0', attend(at('q.npy'), 'flash', ...cpu, '--scale', '0'), 2, /--scale must be a number above 0/],
  ['--scale -1 (a value, not a flag)', attend(at('q.npy'), 'flash', ...cpu, '--scale', '-1'), 2, /--scale must be/],
  ['bench --reps 0', ['bench', 'attention', '--reps', '0', ...cpu], 2, /--reps must be an integer from 1/],
  [
    'bench GQA mismatch',
    ['bench', 'attention', '--heads', '4', '--kv-heads', '3', ...cpu],
    2,
    /multiple of --kv-heads/,
  ],
  ['bench --lengths 10000000K', ['bench', 'attention', '--lengths', '10000000K', ...cpu], 2, /more than the limit/],
  ['demo --lengths 10000000K', ['demo', '--lengths', '10000000K', ...cpu], 2, /more than the limit/],
  ['--storage f16 on the CPU', generate(STORIES, '--storage', 'f16'), 2, /--storage f16 is for WebGPU/],
  ['window:left=1e20', attend(at('q.npy'), 'window:left=99999999999999999999', ...cpu), 2, /more than the limit/],
  [
    'star:hosts=100000 (in one process)',
    attend(at('q.npy'), 'star:block=4,hosts=100000', ...cpu),
    2,
    /hosts=100000 is more than the limit of 256/,
  ],
  [
    'ring:hosts=100000 (in one process)',
    attend(at('q.npy'), 'ring:hosts=100000', ...cpu),
    2,
    /SpecError: ring: hosts=100000/,
  ],
  ['cca:group=1e11 (CPU)', attend(at('q.npy'), 'cca:group=99999999999', ...cpu), 2, /SpecError: cca: group/],
  ['cca:group=1e11 (WebGPU)', attend(at('q.npy'), 'cca:group=99999999999', '--backend', 'webgpu'), 2, /cca: group/],
  ['head dim 65536 (WebGPU)', attend(at('wide.npy'), 'flash', '--backend', 'webgpu'), 1, /workgroup memory/],
  [
    'head dim 4100, CCA (WebGPU)',
    attend(at('d4100.npy'), 'cca:group=1,window=1', '--backend', 'webgpu'),
    1,
    /UnsupportedError: kernel cca-attend-4100-f32 needs 262400 bytes of workgroup memory/,
  ],
  [
    'head dim 4100, DSA (WebGPU)',
    attend(
      at('d4100.npy'),
      'dsa:topk=2',
      '--backend',
      'webgpu',
      ...['iq', 'ik', 'iw'].flatMap((n) => [`--index-${n[1]}`, at(`${n}.npy`)]),
    ),
    1,
    /UnsupportedError: kernel sparse-gather-4100-1-f32 needs an array of 65600 elements/,
  ],
  // Bounded inputs
  ['--q /dev/zero', attend('/dev/zero', 'flash', ...cpu), 2, /not a \.npy file/],
  [
    '--prompt-file /dev/zero',
    [...generate(STORIES).filter((a) => a !== '--prompt' && a !== 'Once'), '--prompt-file', '/dev/zero'],
    2,
    /more than the limit/,
  ],
  ['--model a .gguf that is /dev/zero', generate(at('zero.gguf')), 2, /zero\.gguf: not a GGUF file/],
  ['--session /dev/zero', generate(STORIES, '--session', '/dev/zero'), 2, /\/dev\/zero is not a longctx session file/],
  ...npyCases.map(([name, path]): [string, string[], 1 | 2, RegExp] => [
    `npy shape: ${name}`,
    attend(path, 'flash', ...cpu),
    2,
    /malformed \.npy header/,
  ]),
  [
    'npy longer than its header says',
    attend(at('long.npy'), 'flash', ...cpu),
    2,
    /more bytes than its header declares/,
  ],
  [
    '--out in a missing folder',
    [...attend(at('q.npy'), 'flash', ...cpu).slice(0, -2), '--out', at('no/such/o.npy')],
    2,
    /no such file or folder/,
  ],
  [
    '--out on a full disk',
    [...attend(at('q.npy'), 'flash', ...cpu).slice(0, -2), '--out', '/dev/full'],
    1,
    /no space left/,
  ],
  ['config.json with 1e9 layers', generate(hf.layers), 2, /layers limit of 1024/],
  ['config.json eps 0', generate(hf.eps), 2, /SpecError: .*rms_norm_eps must be a positive number/],
  ['tokenizer.json vocab as a list', generate(hf.vocabList), 2, /model\.vocab\[0\] is not a \[piece, score\] pair/],
  ['tokenizer.json duplicate ids', generate(hf.duplicateIds), 2, /is given to both/],
  ['tokenizer.json added token past the vocab', generate(hf.addedPast), 2, /an id past the vocabulary/],
  ['model.safetensors a folder', generate(hf.safetensorsDir), 2, /is not a file/],
  ['safetensors header length minus one', generate(hf.headerShort), 2, /wrong header length/],
  ['GGUF eps 0', generate(gguf.eps), 2, /SpecError: .*RMSNorm epsilon/],
  ['GGUF rope base -1', generate(gguf.theta), 2, /SpecError: .*RoPE base/],
  ['GGUF RoPE factor -2', generate(gguf.ropeFactor), 2, /SpecError: .*RoPE linear factor/],
  ['GGUF general.alignment a string', generate(gguf.alignment), 2, /general\.alignment has value type 8/],
  ['GGUF duplicate metadata key', generate(gguf.duplicateKey), 2, /appears twice/],
  ['GGUF duplicate tensor info', generate(gguf.duplicateTensor), 2, /listed twice/],
  ['GGUF NaN weights', generate(gguf.nanWeight), 2, /NonFiniteError: .*blk\.2\.attn_k\.weight/],
  ['activations overflow', generate(gguf.hugeWeight), 2, /NonFiniteError: the output of layer 0/],
  [
    'prompt beyond the trained context',
    [...generate(STORIES).slice(0, 3), '--prompt-file', at('long-prompt.txt'), '--max-tokens', '1', ...cpu],
    2,
    /trained at; use --rope linear:factor=2/,
  ],
  [
    '--max-tokens past host memory',
    generate(STORIES, '--max-tokens', '100000000', '--allow-overflow'),
    1,
    /OutOfMemoryError: .*host memory/,
  ],
];

for (const [name, args, code, message] of CASES) {
  test(`bad input: ${name}`, () => {
    const r = spawnSync(process.execPath, [cli, ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, LONGCTX_DAWN_WARNINGS: undefined },
    });
    // Progress lines of a run that had started (`generate: ...`) may come first; the error is one last line.
    const lines = r.stderr.trim().split('\n');
    const err = lines[lines.length - 1];
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, `no stack trace:\n${r.stderr}`);
    assert.equal(lines.filter((l) => l.startsWith('longctx:')).length, 1, `one error line:\n${r.stderr}`);
    assert.ok(
      lines.slice(0, -1).every((l) => /^[a-z]+: /.test(l) && !l.startsWith('longctx')),
      r.stderr,
    );
    assert.match(err, /^longctx: [A-Za-z]+Error: /);
    assert.match(err, message);
    assert.equal(r.status, code, `exit code (stderr: ${err})`);
  });
}

test('--help on every subcommand prints its usage and exits 0', () => {
  // Every subcommand main.ts dispatches (read from its switch, so a new one without --help fails here).
  const main = readFileSync(fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)), 'utf8');
  const commands = [...main.matchAll(/^ {4}case '([a-z][a-z-]*)':/gm)].map((m) => m[1]).filter((c) => c !== 'help');
  assert.ok(commands.length >= 13 && commands.includes('serve') && commands.includes('eval-mass'), `${commands}`);
  const subs = [...commands.map((c) => [c]), ['bench', 'attention'], ['bench', 'dsa'], ['bench', 'model']];
  for (const sub of subs) {
    const r = spawnSync(process.execPath, [cli, ...sub, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `${sub.join(' ')} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`longctx ${sub[0]}`));
  }
});

test('canServe: RoPE scaling or windows on every layer serve a prompt past the trained context', () => {
  const config = { contextLength: 2048, layers: 4, rope: { kind: 'none' } } as unknown as ModelConfig;
  const serve = (c: ModelConfig, spec: string, tokens: number) =>
    canServe(c, { schedule: scheduleFromSpec(parseMethodSpec(spec)) }, tokens);
  assert.equal(serve(config, 'flash', 2048).ok, true);
  const over = serve(config, 'flash', 3215);
  assert.equal(over.ok, false);
  assert.deepEqual([over.positions, over.trainedContext], [3215, 2048]);
  assert.equal(serve({ ...config, rope: { kind: 'linear', factor: 2 } }, 'flash', 3215).ok, true);
  assert.equal(serve({ ...config, rope: { kind: 'linear', factor: 1.5 } }, 'flash', 3215).ok, false);
  assert.equal(serve(config, 'window:left=1024', 100_000).ok, true);
  assert.equal(serve(config, 'sinks:tokens=4,left=1000', 100_000).ok, true);
  assert.equal(serve(config, 'hybrid:every=2,window=128', 100_000).ok, false, 'global layers see every position');
  assert.equal(serve(config, 'window:left=4096', 100_000).ok, false, 'a window wider than the context');
  const dynamic = { ...config, rope: { kind: 'ntk', factor: 2, dynamic: true } } as ModelConfig;
  assert.equal(serve(dynamic, 'flash', 1_000_000).ok, true);
});

test("plan names a small model's parameters in K or M, never '0.00B' (stories260K: 293K)", () => {
  assert.deepEqual(
    [formatCount(260_000), formatCount(15_000_000), formatCount(1_235_814_400)],
    ['260K', '15M', '1.24B'],
  );
  const r = spawnSync(process.execPath, [cli, 'plan', '--model', STORIES, '--context', '4K'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /, 293K parameters/);
  assert.match(r.stdout, /f32 KV cache/, "plan's default storage is generate's");
});
