// Star and Ring across host processes over a real nats-server: the codec, results equal to one process
// (bit for bit) and to the float64 reference for 1, 2 and 4 hosts, and the faults: a wrong token, a host
// killed or stopped mid-run (a HostError naming it, within the timeout), a retry, loopback only; a killed
// coordinator takes its hosts and server with it, and --timeout is silence, not compute time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attention } from '../src/attention/attention.js';
import { starParams } from '../src/attention/star.js';
import { chunkMessage, decodeMessage, encodeMessage, Reassembler } from '../src/cluster/codec.js';
import { Cluster } from '../src/cluster/cluster.js';
import { startNatsServer, waitExit, type NatsServer } from '../src/cluster/nats-server.js';
import { Peer } from '../src/cluster/transport.js';
import { HostError, InputError } from '../src/errors.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { referenceAttention } from '../src/reference/attention.js';
import { starReference } from '../src/reference/star-reference.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal } from '../src/tensor.js';
import { assertMatchesReference, sameBits } from './support.js';
import { alive, descendants } from './processes.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('codec: tensors survive chunking, out of order and interleaved with another sender', () => {
  const a = randomNormal([3, 37, 40], 1, 'f16');
  const b = randomNormal([2, 11, 7], 2, 'f32');
  const chunks1 = [...chunkMessage(encodeMessage({ kind: 'x', n: 1 }, { a, b }), 2048, 7, 1)];
  const chunks2 = [...chunkMessage(encodeMessage({ kind: 'y' }, { b }), 2048, 8, 1)];
  assert.ok(chunks1.length > 3 && chunks1.every((c) => c.byteLength <= 2048));
  const r = new Reassembler();
  let whole: Uint8Array | undefined;
  let other: Uint8Array | undefined;
  [...chunks1].reverse().forEach((c, i) => {
    if (i < chunks2.length) other = r.add(Buffer.from(chunks2[i])) ?? other;
    whole = r.add(Buffer.from(c)) ?? whole; // Node Buffers, as nats.js delivers them
  });
  assert.equal(r.pending, 0);
  assert.deepEqual(decodeMessage(other!).meta, { kind: 'y' });
  assert.ok(whole);
  const e = decodeMessage(whole);
  assert.deepEqual(e.meta, { kind: 'x', n: 1 });
  assert.deepEqual(e.tensors.a.shape, [3, 37, 40]);
  assert.equal(e.tensors.a.dtype, 'f16');
  assert.deepEqual([...e.tensors.a.data], [...a.data]);
  assert.ok(sameBits(e.tensors.b.data as Float32Array, b.data as Float32Array));
});

const Q = randomNormal([4, 97, 64], 11);
const K = randomNormal([2, 97, 64], 12);
const V = randomNormal([2, 97, 64], 13);
const STAR = 'star:block=16,anchor=16,query=9';

async function checkCluster(c: Cluster, hosts: number): Promise<void> {
  const star = await c.attention(Q, K, V, STAR);
  const local = await attention(cpuDevice, Q, K, V, `${STAR},hosts=${hosts}`);
  assert.ok(
    sameBits(star.state.o, local.o) && sameBits(star.state.lse, local.lse),
    `star over ${hosts} hosts equals one process bit for bit`,
  );
  assertMatchesReference(star.state, starReference(Q, K, V, starParams(STAR)), undefined, `star ${hosts} hosts`);
  assert.equal(star.timings.hostMs.length, hosts);
  const ring = await c.attention(Q, K, V, 'ring');
  const localRing = await attention(cpuDevice, Q, K, V, `ring:hosts=${hosts}`);
  assert.ok(sameBits(ring.state.o, localRing.o), `ring over ${hosts} hosts equals one process bit for bit`);
  assertMatchesReference(ring.state, referenceAttention(Q, K, V), undefined, `ring ${hosts} hosts`);
}

for (const hosts of [1, 4]) {
  test(`${hosts} spawned host process(es): star and ring equal one process and the reference`, async () => {
    const c = await Cluster.start({ hosts, backend: 'cpu', timeoutMs: 30_000 });
    try {
      assert.equal(c.hosts.length, hosts);
      assert.ok(
        c.hosts.every((h) => h.pid !== process.pid),
        'hosts are separate processes',
      );
      await checkCluster(c, hosts);
    } finally {
      await c.close();
    }
  });
}

describe('hosts already connected to a server (longctx host --nats URL)', () => {
  let server: NatsServer;
  const hosts: ChildProcess[] = [];
  const startHost = (id: string) => {
    const child = spawn(process.execPath, [cli, 'host', '--nats', server.url, '--backend', 'cpu', '--id', id], {
      env: { ...process.env, LONGCTX_NATS_TOKEN: server.token },
      stdio: 'ignore',
    });
    hosts.push(child);
    return child;
  };
  before(async () => {
    server = await startNatsServer();
    startHost('test-a');
    startHost('test-b');
  });
  after(async () => {
    for (const h of hosts) {
      h.kill('SIGCONT');
      h.kill('SIGKILL');
    }
    await server.stop();
  });

  test('2 hosts found by discovery: equal results', async () => {
    const c = await Cluster.start({ hosts: 2, nats: server.url, token: server.token, timeoutMs: 30_000 });
    try {
      assert.deepEqual(
        c.hosts.map((h) => h.id),
        ['test-a', 'test-b'],
      );
      await checkCluster(c, 2);
      await assert.rejects(c.attention(Q, K, V, 'ring:hosts=3'), InputError);
    } finally {
      await c.close();
    }
  });

  test('a wrong token is refused (host and coordinator)', async () => {
    const r = spawnSync(process.execPath, [cli, 'host', '--nats', server.url, '--token', 'wrong', '--backend', 'cpu'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /refused the token/);
    await assert.rejects(Peer.connect({ url: server.url, token: 'nope', name: 'intruder' }), InputError);
  });

  test('the server listens on loopback only', async () => {
    const port = Number(server.url.split(':').pop());
    assert.match(server.url, /^nats:\/\/127\.0\.0\.1:/);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    if (!external) return;
    const reached = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host: external.address, port, timeout: 2000 }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
      s.on('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    assert.equal(reached, false, `nats-server must not answer on ${external.address}`);
  });

  test('a stopped host is named in a HostError within the timeout', async () => {
    const c = await Cluster.start({ hosts: 2, nats: server.url, token: server.token, timeoutMs: 2_000 });
    const b = hosts[1];
    try {
      b.kill('SIGSTOP');
      const t0 = performance.now();
      await assert.rejects(
        c.attention(Q, K, V, STAR),
        (e: Error) => e instanceof HostError && /host 1 \(test-b/.test(e.message),
      );
      assert.ok(performance.now() - t0 < 6_000, 'within the timeout');
    } finally {
      b.kill('SIGCONT');
      await c.close();
    }
  });
});

test('a host killed mid-run is named at once; the run can be retried', async () => {
  const big = {
    q: randomNormal([8, 1500, 64], 21),
    k: randomNormal([8, 1500, 64], 22),
    v: randomNormal([8, 1500, 64], 23),
  };
  const c = await Cluster.start({ hosts: 2, backend: 'cpu', timeoutMs: 60_000 });
  try {
    const victim = c.hosts[1];
    const run = c.attention(big.q, big.k, big.v, 'ring');
    setTimeout(() => victim.child!.kill('SIGKILL'), 300);
    const t0 = performance.now();
    await assert.rejects(run, (e: Error) => e instanceof HostError && e.message.includes(victim.id));
    assert.ok(performance.now() - t0 < 20_000, 'long before the 60 s timeout');
    await assert.rejects(c.attention(Q, K, V, 'ring'), HostError);
  } finally {
    await c.close();
  }
  const retry = await Cluster.start({ hosts: 2, backend: 'cpu', timeoutMs: 30_000 });
  try {
    const r = await retry.attention(Q, K, V, 'ring');
    assertMatchesReference(r.state, referenceAttention(Q, K, V), undefined, 'retried ring');
  } finally {
    await retry.close();
  }
});

test('longctx attend --hosts 2: star across processes, equal to one process; servers and hosts stopped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-dist-'));
  const p = (n: string) => join(dir, n);
  writeNpy(p('q.npy'), Q);
  writeNpy(p('k.npy'), K);
  writeNpy(p('v.npy'), V);
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'attend',
      '--q',
      p('q.npy'),
      '--k',
      p('k.npy'),
      '--v',
      p('v.npy'),
      '--method',
      STAR,
      '--hosts',
      '2',
      '--backend',
      'cpu',
      '--out',
      p('o.npy'),
      '--lse',
      p('l.npy'),
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /phase 1 [\d.]+ ms/);
  const local = await attention(cpuDevice, Q, K, V, `${STAR},hosts=2`);
  assert.ok(sameBits(readNpy(p('o.npy')).data as Float32Array, local.o));
  const left = spawnSync('pgrep', ['-f', `nats-server -c ${tmpdir()}/longctx-nats-`], { encoding: 'utf8' });
  assert.equal(
    left.stdout.trim().split('\n').filter(Boolean).length <= 1,
    true,
    "only the test suite's own server may remain",
  );
  void waitExit;
});

test(
  'SIGKILL of the coordinator: hosts and nats-server exit within seconds, no token file remains',
  {
    skip: !existsSync('/proc/self/stat'),
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'longctx-orphans-'));
    const temp = join(dir, 'tmp');
    mkdirSync(temp);
    const big = randomNormal([8, 1500, 64], 41);
    writeNpy(join(dir, 'x.npy'), big);
    const x = join(dir, 'x.npy');
    const coordinator = spawn(
      process.execPath,
      [
        cli,
        'attend',
        '--q',
        x,
        '--k',
        x,
        '--v',
        x,
        '--method',
        'ring',
        '--hosts',
        '2',
        '--backend',
        'cpu',
        '--out',
        join(dir, 'o.npy'),
      ],
      { env: { ...process.env, TMPDIR: temp }, stdio: 'ignore' },
    );
    // The keeper shell, nats-server under it and two hosts.
    let pids: number[] = [];
    const deadline = Date.now() + 30_000;
    while (pids.length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      pids = descendants(coordinator.pid!);
    }
    assert.ok(pids.length >= 4, `coordinator started its server and hosts (${pids.length} processes)`);
    await new Promise((r) => setTimeout(r, 500)); // into the run
    coordinator.kill('SIGKILL');
    const t0 = Date.now();
    while (pids.some(alive) && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(pids.filter(alive), [], 'no child outlives the coordinator by 5 s');
    assert.deepEqual(readdirSync(temp), [], 'the token config folder is gone');
  },
);

test('--timeout is silence: a host computing longer than it is not dead; the compute budget is separate', async () => {
  // Synthetic inputs (hosts make their own slices): only compute, no transfer, takes time here.
  // 4000 tokens: a few seconds of compute per host here, well over the 1.5 s timeout (hosts beat every 0.5 s).
  const g = (seed: number) => ({ heads: 4, tokens: 4000, dim: 64, dtype: 'f32' as const, seed });
  const x = { kind: 'synthetic' as const, q: g(1), k: g(2), v: g(3) };
  const c = await Cluster.start({ hosts: 2, backend: 'cpu', timeoutMs: 1_500 });
  try {
    const r = await c.run(x, 'ring', {}, false);
    assert.ok(Math.max(...r.timings.hostMs) > 1_500, `a host computed ${r.timings.hostMs} ms, longer than the timeout`);
  } finally {
    await c.close();
  }
  const tight = await Cluster.start({ hosts: 2, backend: 'cpu', timeoutMs: 1_500, computeTimeoutMs: 500 });
  try {
    await assert.rejects(
      tight.run(x, 'ring', {}, false),
      (e: Error) => e instanceof HostError && /compute budget/.test(e.message),
    );
  } finally {
    await tight.close();
  }
});

test('a user-started host exits with a HostError when its coordinator is killed; a closed one lets it live', async () => {
  const server = await startNatsServer();
  const host = spawn(process.execPath, [cli, 'host', '--nats', server.url, '--backend', 'cpu', '--id', 'lone'], {
    env: { ...process.env, LONGCTX_NATS_TOKEN: server.token },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  host.stderr!.setEncoding('utf8');
  host.stderr!.on('data', (t: string) => (log += t));
  const exited = new Promise<number | null>((resolve) => host.once('exit', (code) => resolve(code)));
  const dir = mkdtempSync(join(tmpdir(), 'longctx-lone-'));
  try {
    // A coordinator that closes lets the host go: more than its 1 s timeout later the host still serves.
    const c = await Cluster.start({ hosts: 1, nats: server.url, token: server.token, timeoutMs: 1_000 });
    await checkCluster(c, 1);
    await c.close();
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(host.exitCode, null, `the host exited after a clean close: ${log}`);

    // A coordinator killed mid-run tells no one: the host must notice its silence (2 s) and exit non-zero.
    const x = join(dir, 'x.npy');
    writeNpy(x, randomNormal([8, 3000, 64], 51));
    const args = ['attend', '--q', x, '--k', x, '--v', x, '--method', 'ring', '--nats', server.url];
    const coordinator = spawn(
      process.execPath,
      [cli, ...args, '--hosts', '1', '--timeout', '2', '--backend', 'cpu', '--out', join(dir, 'o.npy')],
      { env: { ...process.env, LONGCTX_NATS_TOKEN: server.token }, stdio: 'ignore' },
    );
    const deadline = Date.now() + 30_000;
    while ((log.match(/claimed by/g) ?? []).length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal((log.match(/claimed by/g) ?? []).length, 2, `the coordinator claimed the host: ${log}`);
    coordinator.kill('SIGKILL');
    const t0 = Date.now();
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))]);
    assert.equal(code, 1, `host exit code (log: ${log})`);
    assert.ok(Date.now() - t0 < 15_000);
    assert.match(log, /^longctx: HostError: coordinator coord-[0-9a-f]+ showed no sign of life for [\d.]+ s/m);
    assert.doesNotMatch(log, /internal error|\n\s+at /);
  } finally {
    host.kill('SIGKILL');
    await server.stop();
  }
});
