// A whole model across host processes (Star phase 1 per host, phase 2 and decoding through remote layers;
// Ring as the exact baseline) over a real nats-server, CPU: greedy ids and logits equal to one process
// (the one-process star layers with the same blocks; flash for Ring) on stories260K and passkey-2k for 1, 2
// and 4 hosts; the faults: a host killed mid-prefill and mid-decode (a HostError naming it, within the
// timeout; the CLI exits non-zero and leaves nothing running), a wrong token, a different model, loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster } from '../src/cluster/cluster.js';
import { startNatsServer } from '../src/cluster/nats-server.js';
import { DistributedDecoder } from '../src/cluster/star-model.js';
import { hostParts } from '../src/cluster/star-model-layout.js';
import { HostError, InputError, ModelMismatchError } from '../src/errors.js';
import { promptTokens } from '../src/model/generation/generate.js';
import { loadModel } from '../src/model/load/load.js';
import { FIXTURE_GGUF, expectedIds } from './model-support.js';
import { acrossHosts, maxErr, oneProcess, runOptions, type Case } from './star-model-support.js';
import { killFirstHost, survivors } from './processes.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PASSKEY = fileURLToPath(new URL('../../test/fixtures/passkey-2k', import.meta.url));
const stories = loadModel(FIXTURE_GGUF);
const passkey = loadModel(PASSKEY);
const passkeyCase = JSON.parse(readFileSync(`${PASSKEY}/cases-2k.jsonl`, 'utf8').split('\n')[0]) as {
  prompt: string;
  answer: string;
};
// A 2K case cut to its first 24 and last 104 tokens (the question at its end): CPU time stays small.
const passkeyAll = promptTokens(passkey.tokenizer, passkeyCase.prompt, true);
const passkeyIds = [...passkeyAll.slice(0, 24), ...passkeyAll.slice(-104)];

const storiesIds = expectedIds().slice(0, 61);
const CASES: Case[] = [
  {
    name: 'stories260K',
    model: stories,
    path: FIXTURE_GGUF,
    ids: storiesIds,
    spec: 'star:block=16,anchor=8',
    newTokens: 12,
  },
  {
    name: 'stories260K, 5 query tokens',
    model: stories,
    path: FIXTURE_GGUF,
    ids: storiesIds,
    spec: 'star:block=16,anchor=8,query=5',
    newTokens: 8,
  },
  { name: 'passkey-2k', model: passkey, path: PASSKEY, ids: passkeyIds, spec: 'star:block=32', newTokens: 6 },
];

test('host parts: whole blocks in order, the anchor copy first, the query on the last host; ring shards', () => {
  const base = { block: 16, anchor: 8, query: 5, hosts: 4, promptTokens: 61, newTokens: 7, chunk: 64 };
  const star = hostParts({ ...base, method: 'star' });
  // 56 context tokens = 4 blocks (the last one short): one per host.
  assert.deepEqual(
    star.map((p) => p.runs),
    [
      [[0, 16]],
      [
        [0, 8],
        [16, 32],
      ],
      [
        [0, 8],
        [32, 48],
      ],
      [
        [0, 8],
        [48, 56],
        [56, 61],
      ],
    ],
  );
  assert.deepEqual(
    star.map((p) => [p.anchorCopy, p.capacity, p.context, p.queryHost]),
    [
      [0, 16, 56, false],
      [8, 24, 56, false],
      [8, 24, 56, false],
      [8, 8 + 8 + 5 + 7, 56, true],
    ],
  );
  const ring = hostParts({ ...base, method: 'ring' });
  assert.deepEqual(
    ring.map((p) => p.runs),
    [[[0, 15]], [[15, 30]], [[30, 45]], [[45, 61]]],
  );
  assert.equal(ring[0].chunk, 16, 'a ring host encodes its shard in one chunk');
  assert.throws(() => hostParts({ ...base, method: 'star', query: 62 }), InputError);
});

describe('a model across 4 spawned host processes', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.start({ hosts: 4, backend: 'cpu', timeoutMs: 20_000 });
  });
  after(() => cluster?.close());

  for (const c of CASES) {
    test(`${c.name}: ${c.spec} on 1, 2 and 4 hosts gives the one-process star layers' greedy ids`, async () => {
      const one = await oneProcess(c, c.spec);
      const flash = await oneProcess(c, 'ring');
      assert.ok(maxErr(one.logits, flash.logits) > 1e-3, 'star differs from causal attention (the test can fail)');
      for (const hosts of [1, 2, 4]) {
        const r = await acrossHosts(cluster, c, c.spec, hosts);
        assert.deepEqual(r.ids, one.ids, `${hosts} hosts`);
        assert.ok(maxErr(r.logits, one.logits) < 1e-4, `${hosts} hosts: logits ${maxErr(r.logits, one.logits)}`);
        assert.equal(r.timings.phase1Ms.length, hosts);
        assert.ok(r.timings.phase1Ms.every((ms) => ms > 0));
        if (hosts > 1) assert.ok(r.timings.hostBytes.reduce((a, b) => a + b) > 0, 'states moved');
        assert.match(r.report.join('\n'), /phase 1 per host .*\n.*per layer.*\n.*bytes moved: \d+/);
      }
    });
  }

  test('ring on 2 and 4 hosts gives one-process flash ids (KV shards travel in phase 1)', async () => {
    const c = CASES[0];
    const flash = await oneProcess(c, 'ring');
    for (const hosts of [2, 4]) {
      const r = await acrossHosts(cluster, c, 'ring', hosts);
      assert.deepEqual(r.ids, flash.ids, `${hosts} hosts`);
      assert.ok(maxErr(r.logits, flash.logits) < 1e-4, `${hosts} hosts: logits ${maxErr(r.logits, flash.logits)}`);
      const kvBytes = 2 * 4 * c.model.config.kvHeads * c.model.config.headDim * c.model.config.layers;
      assert.ok(r.timings.hostBytes[0] >= kvBytes * Math.floor(c.ids.length / hosts), 'host 0 sent its KV');
    }
  });
});

describe('faults', () => {
  const c = CASES[0];

  test('a context host stopped mid-decode is named within --timeout; one killed mid-prefill at once', async () => {
    const cluster = await Cluster.start({ hosts: 2, backend: 'cpu', timeoutMs: 1_500 });
    const named = (e: Error) => e instanceof HostError && /host 0 \(local-/.test(e.message);
    try {
      const victim = cluster.hosts[0].child!;
      const stopped = await DistributedDecoder.start(cluster, runOptions(c, c.spec, 2, 1_500));
      await stopped.forward(c.ids);
      victim.kill('SIGSTOP');
      let t0 = Date.now();
      await assert.rejects(stopped.forward([5]), named);
      assert.ok(Date.now() - t0 < 4_000, `stopped: named within ${Date.now() - t0} ms`);
      victim.kill('SIGCONT');
      stopped.destroy();

      const killed = await DistributedDecoder.start(cluster, runOptions(c, c.spec, 2, 1_500));
      victim.kill('SIGSTOP'); // so the prefill is surely in flight on it when it dies
      t0 = Date.now();
      const prefill = killed.forward(c.ids);
      setTimeout(() => victim.kill('SIGKILL'), 200);
      await assert.rejects(prefill, named);
      assert.ok(Date.now() - t0 < 1_400, `killed: named within ${Date.now() - t0} ms, before the timeout`);
      killed.destroy();
    } finally {
      await cluster.close();
    }
    assert.ok(
      cluster.hosts.every((h) => h.child!.exitCode !== null || h.child!.signalCode !== null),
      'every host stopped',
    );
  });

  test('a host that loaded a different model is refused; a wrong token is refused', async () => {
    const server = await startNatsServer();
    const hosts: ChildProcess[] = [];
    try {
      for (const [id, model] of [
        ['same', FIXTURE_GGUF],
        ['other', PASSKEY],
      ])
        hosts.push(
          spawn(
            process.execPath,
            [cli, 'host', '--nats', server.url, '--backend', 'cpu', '--id', id, '--model', model],
            {
              env: { ...process.env, LONGCTX_NATS_TOKEN: server.token },
              stdio: 'ignore',
            },
          ),
        );
      const cluster = await Cluster.start({ hosts: 2, nats: server.url, token: server.token });
      try {
        await assert.rejects(
          DistributedDecoder.start(cluster, runOptions(c, c.spec, 2)),
          (e: Error) => e instanceof ModelMismatchError && /host 0 \(other.*different model/.test(e.message),
        );
      } finally {
        await cluster.close();
      }
      const wrong = spawnSync(
        process.execPath,
        [
          cli,
          'generate',
          '--model',
          FIXTURE_GGUF,
          '--prompt',
          'Once',
          '--max-tokens',
          '2',
          '--attention',
          'star:block=4',
        ].concat(['--nats', server.url, '--token', 'wrong', '--hosts', '2']),
        { encoding: 'utf8', timeout: 30_000 },
      );
      assert.notEqual(wrong.status, 0);
      assert.match(wrong.stderr, /refused the token/);
    } finally {
      hosts.forEach((h) => h.kill('SIGKILL'));
      await server.stop();
    }
  });

  test(
    'generate --hosts 2: text as one process on loopback; a host killed mid-decode: non-zero exit, nothing left',
    { skip: !readdirSync('/proc').includes('self') },
    async () => {
      const args = [cli, 'generate', '--model', FIXTURE_GGUF, '--prompt', 'Once upon a time', '--attention'];
      const one = spawnSync(process.execPath, [...args, 'star:block=4,anchor=2', '--max-tokens', '30'], {
        encoding: 'utf8',
      });
      const two = spawnSync(
        process.execPath,
        [...args, 'star:block=4,anchor=2', '--max-tokens', '30', '--hosts', '2'],
        {
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      assert.equal(two.status, 0, two.stderr);
      assert.equal(two.stdout, one.stdout);
      assert.match(two.stderr, /via nats:\/\/127\.0\.0\.1:\d+/);
      assert.match(two.stderr, /phase 1 per host [\d.]+\/[\d.]+ ms/);
      assert.match(two.stderr, /bytes moved: [1-9]\d*/);

      const r = await killFirstHost([
        ...args,
        'star:block=4,anchor=2',
        '--max-tokens',
        '400',
        '--hosts',
        '2',
        '--timeout',
        '5',
      ]);
      assert.equal(r.hostCommands.length, 2, 'two host processes');
      assert.notEqual(r.code, 0);
      assert.ok(r.ms < 5_000, `stopped within ${r.ms} ms`);
      assert.match(r.stderr, /HostError|host 0 \(local-[0-9a-f]+-0, pid \d+/);
      assert.deepEqual(await survivors(r.pids), [], 'no host or server outlives the coordinator');
    },
  );
});
