// `longctx attend --hosts H [--nats URL --token T]`: Star or Ring attention across host processes over
// NATS. Without --nats it starts a loopback nats-server and H `longctx host` processes, and stops them.
import { InputError } from '../errors.js';
import type { MethodSpec } from '../attention/spec.js';
import { distributedAttention } from '../cluster/run.js';
import { tensor, type Tensor } from '../tensor.js';
import { writeNpy } from '../io/npy.js';
import { backendOption, numberOption } from './args.js';

export const ATTEND_HOSTS_USAGE = `  across processes (star, ring): --hosts H spawns H \`longctx host\` processes on a private loopback
  nats-server; --nats URL [--token T] uses H hosts already connected there; [--listen ADDR] lets the
  private server listen beyond loopback; [--timeout S] silence after which a host counts as dead (no reply
  and no heartbeat; default 30); [--compute-timeout S] the longest one step may compute (default 3600).`;

export const ATTEND_HOSTS_OPTIONS = {
  hosts: { type: 'string' },
  nats: { type: 'string' },
  token: { type: 'string' },
  listen: { type: 'string' },
  timeout: { type: 'string' },
  'compute-timeout': { type: 'string' },
} as const;

export function wantsHosts(v: Record<string, unknown>): boolean {
  return v.hosts !== undefined || v.nats !== undefined;
}

export async function attendAcrossHosts(
  v: Record<string, string | boolean | undefined>,
  spec: MethodSpec,
  q: Tensor,
  k: Tensor,
  vv: Tensor,
  out: string,
): Promise<void> {
  const hosts = numberOption(v, 'hosts') ?? (spec.params.hosts !== undefined ? Number(spec.params.hosts) : undefined);
  if (hosts === undefined || !Number.isInteger(hosts) || hosts < 1)
    throw new InputError('--hosts H (a positive integer) is required to run across hosts');
  const timeout = numberOption(v, 'timeout') ?? 30;
  const computeTimeout = numberOption(v, 'compute-timeout') ?? 3600;
  const { state, timings } = await distributedAttention(
    q,
    k,
    vv,
    spec,
    {
      hosts,
      nats: v.nats as string | undefined,
      token: v.token as string | undefined,
      listen: v.listen as string | undefined,
      backend: backendOption(v),
      timeoutMs: timeout * 1000,
      computeTimeoutMs: computeTimeout * 1000,
    },
    { causal: !v['no-causal'], scale: numberOption(v, 'scale') },
  );
  writeNpy(out, tensor([state.heads, state.queries, state.headDim], 'f32', state.o));
  if (typeof v.lse === 'string') writeNpy(v.lse, tensor([state.heads, state.queries], 'f32', state.lse));
  const t = timings;
  process.stderr.write(
    `attend: ${spec.name} on ${hosts} hosts: [${state.heads}, ${state.queries}, ${state.headDim}]; load ${t.loadMs.toFixed(1)} ms, ` +
      `${spec.name === 'star' ? 'phase 1' : 'ring'} ${t.phase1Ms.toFixed(1)} ms (hosts ${t.hostMs.map((x) => x.toFixed(1)).join('/')}), ` +
      `${spec.name === 'star' ? `phase 2 ${t.phase2Ms.toFixed(1)} ms, ` : ''}fetch ${t.fetchMs.toFixed(1)} ms\n`,
  );
}
