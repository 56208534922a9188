// Dawn (the native WebGPU of the `webgpu` package) prints two warnings on every adapter request on Mesa's
// lavapipe, from C++ straight to file descriptor 2, where no JavaScript hook sees them:
//   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit ...
// The only place to drop them is a pipe. So a command that may touch WebGPU runs as a child of this
// process with its stderr piped through a filter that removes exactly those two lines and passes everything
// else through as it comes. The child watches file descriptor 3 (a pipe from this process) and stops when it
// closes, so a killed parent never leaves it running. LONGCTX_DAWN_WARNINGS=1 shows the warnings again.
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';

const NOISE =
  /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const NOISE_START = 'Warning: maxDynamic';
const CHILD_ENV = 'LONGCTX_STDERR_FILTERED';

/** Lines of `text` without Dawn's two warnings; a trailing partial line is kept only while it may become one. */
export function dropDawnWarnings(pending: string, text: string): { out: string; pending: string } {
  const lines = (pending + text).split('\n');
  let rest = lines.pop() ?? '';
  const kept = lines.filter((l) => !NOISE.test(l));
  let out = kept.length ? `${kept.join('\n')}\n` : '';
  const mayBeNoise = NOISE_START.startsWith(rest) || rest.startsWith(NOISE_START);
  if (!mayBeNoise) {
    out += rest; // progress bars rewrite a line with '\r' and no newline: pass them through now
    rest = '';
  }
  return { out, pending: rest };
}

/** In the filtered child: stop (through SIGTERM, so shutdown hooks run) when the parent's pipe closes. */
function watchParent(): void {
  let pipe: Socket;
  try {
    pipe = new Socket({ fd: 3, readable: true, writable: false });
  } catch {
    return; // no pipe on fd 3: not started by runFiltered
  }
  pipe.on('error', () => {});
  pipe.on('close', () => process.kill(process.pid, 'SIGTERM'));
  pipe.resume();
  pipe.unref();
  if (process.env.LONGCTX_STDERR_IS_TTY === '1') (process.stderr as { isTTY?: boolean }).isTTY = true;
}

/**
 * Runs this command again as a filtered child and resolves with its exit code; undefined when this process
 * is that child (or filtering is off), which then just carries on.
 */
export function runFiltered(argv: string[]): Promise<number> | undefined {
  if (process.env[CHILD_ENV] === '1') {
    watchParent();
    return undefined;
  }
  if (process.env.LONGCTX_DAWN_WARNINGS === '1') return undefined;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    stdio: ['inherit', 'inherit', 'pipe', 'pipe'],
    env: { ...process.env, [CHILD_ENV]: '1', LONGCTX_STDERR_IS_TTY: process.stderr.isTTY ? '1' : '0' },
  });
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    const r = dropDawnWarnings(pending, text);
    pending = r.pending;
    if (r.out) process.stderr.write(r.out);
  });
  // Signals from the terminal reach both processes; from elsewhere, only this one: pass them on.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`longctx: DeviceError: cannot start the command: ${e.message}\n`);
      resolve(1);
    });
    child.on('close', (code, signal) => {
      if (pending && !NOISE.test(pending)) process.stderr.write(pending);
      const signals: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGKILL: 9 };
      resolve(code ?? 128 + (signals[signal ?? ''] ?? 1));
    });
  });
}
