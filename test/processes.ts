// Test support for the tests that spawn hosts and servers: which processes are left (Linux /proc).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Pids of every process below `root` (Linux /proc). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while listed
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, p] of parent) if (p === pid) out.push(child), walk(child);
  };
  walk(root);
  return out;
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
};

/** What followed a SIGKILL to the first host of a running `longctx generate ... --hosts N`. */
export interface KilledHost {
  code: number | null;
  stderr: string;
  /** Milliseconds from the kill to the coordinator's exit. */
  ms: number;
  /** Every process below the coordinator while it decoded, and the command lines of its hosts. */
  pids: number[];
  hostCommands: string[];
}

/** Spawns node with `argv` (a generate over hosts), waits for its first output (decoding has begun), kills
 * its first host process and waits for the coordinator to exit. */
export async function killFirstHost(argv: string[]): Promise<KilledHost> {
  const coordinator = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  coordinator.stderr!.on('data', (t) => (stderr += String(t)));
  const started = new Promise<void>((resolve) => coordinator.stdout!.once('data', () => resolve()));
  const exited = new Promise<number | null>((resolve) => coordinator.once('exit', (code) => resolve(code)));
  await started;
  const pids = descendants(coordinator.pid!);
  const command = (p: number) => readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
  const hosts = pids.filter((p) => /\bhost\b/.test(command(p)));
  const hostCommands = hosts.map(command);
  const t0 = Date.now();
  if (hosts.length) process.kill(hosts[0], 'SIGKILL');
  else coordinator.kill('SIGKILL');
  const code = await exited;
  return { code, stderr, ms: Date.now() - t0, pids, hostCommands };
}

/** Waits up to 5 s for `pids` to be gone; returns those still alive. */
export async function survivors(pids: number[]): Promise<number[]> {
  const t1 = Date.now();
  while (pids.some(alive) && Date.now() - t1 < 5_000) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(alive);
}
