// Starts a private nats-server (Debian's package, or the binary in $NATS_SERVER) for one run: loopback
// only unless asked, a random port, a random token in a 0600 config file (never on a command line), and
// stopped afterwards, also when the process exits or gets SIGINT/SIGTERM. The config (the token) is
// removed as soon as the server listens, so a killed coordinator leaves nothing secret on disk; and the
// server runs under a small shell keeper that stops it when the keeper's stdin (a pipe from this process)
// closes, so even SIGKILL of this process leaves no server behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceError } from '../errors.js';
import { onShutdown } from './shutdown.js';

export interface NatsServer {
  url: string;
  token: string;
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** Address to listen on; default 127.0.0.1 (loopback only). */
  listen?: string;
  /** Default: a random free port. */
  port?: number;
  startTimeoutMs?: number;
}

export function natsServerBinary(): string {
  const candidates = [
    process.env.NATS_SERVER,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new DeviceError(
    'nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_SERVER to its path, or pass --nats URL of a running server',
  );
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = natsServerBinary();
  const token = randomBytes(24).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'longctx-nats-'));
  const config = join(dir, 'nats.conf');
  // Tensors arrive in bursts while a host computes (and does not read): let the server buffer them
  // rather than cut the host off as a slow consumer.
  writeFileSync(
    config,
    [
      `host: "${opts.listen ?? '127.0.0.1'}"`,
      `port: ${opts.port ?? -1}`,
      'max_payload: 1048576',
      'max_pending: 4294967296',
      'write_deadline: "300s"',
      `authorization { token: "${token}" }`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const keeper = existsSync('/bin/sh');
  const child = keeper
    ? spawn('/bin/sh', ['-c', KEEPER_SCRIPT, binary, config], { stdio: ['pipe', 'ignore', 'pipe'] })
    : spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let serverPid: number | undefined;
  const killAll = () => {
    if (serverPid !== undefined) {
      try {
        process.kill(serverPid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    child.kill('SIGKILL');
  };
  const removeHook = onShutdown(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async () => {
    removeHook();
    if (child.exitCode === null && child.signalCode === null) {
      if (keeper) child.stdin!.end();
      else child.kill('SIGTERM');
      await waitExit(child, 3000).catch(killAll);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { port, pid } = await listeningPort(child, opts.startTimeoutMs ?? 10_000);
    serverPid = pid;
    rmSync(dir, { recursive: true, force: true }); // read at start; the token lives on only in memory
    const host = !opts.listen || opts.listen === '0.0.0.0' ? '127.0.0.1' : opts.listen;
    return { url: `nats://${host}:${port}`, token, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs nats-server ($0 -c $1) until stdin closes or a signal comes, then stops it. */
const KEEPER_SCRIPT = `"$0" -c "$1" & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid; exit 0' INT TERM HUP
while IFS= read -r _; do :; done
kill $pid 2>/dev/null
wait $pid`;

/** The port from nats-server's log, and its pid (each log line starts with [pid]). */
function listeningPort(child: ChildProcess, timeoutMs: number): Promise<{ port: number; pid?: number }> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(
      () => reject(new DeviceError(`nats-server did not start within ${timeoutMs} ms: ${log.trim().slice(-300)}`)),
      timeoutMs,
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      if (log.length > 100_000) return; // listening already (or hopeless): only drain
      log += text;
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        const pid = /^\[(\d+)\]/m.exec(log)?.[1];
        log = log.padEnd(100_001); // keep draining its log so it never blocks on a full pipe
        resolve({ port: Number(m[1]), pid: pid === undefined ? undefined : Number(pid) });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new DeviceError(`nats-server exited (${signal ?? code}) before listening: ${log.trim().slice(-300)}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new DeviceError(`cannot start nats-server: ${e.message}`));
    });
  });
}

export function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new DeviceError(`process ${child.pid} did not exit within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
