// `longctx generate --attention star:block=B[,anchor=A][,query=Q] --hosts H` (or ring): the model spread
// over H host processes (src/cluster/star-model*.ts). Without --nats it starts a private loopback
// nats-server and H `longctx host` processes and stops them; text on stdout, timings on stderr.
import { ATTEND_HOSTS_OPTIONS } from './attend-hosts.js';
import { InputError, UnsupportedError } from '../errors.js';
import type { MethodSpec } from '../attention/spec.js';
import { starParams } from '../attention/star.js';
import type { LoadedModel } from '../model/types.js';
import { generateAcrossHosts } from '../cluster/star-model-run.js';
import { backendOption, numberOption } from './args.js';

export const GENERATE_HOSTS_USAGE = `  --hosts H with --attention star:block=B[,anchor=A][,query=Q] or ring: the model across H host processes
    (the last is the query host); --nats URL [--token T] uses H hosts already connected there (\`longctx host
    --nats URL\`); [--listen ADDR] the private server beyond loopback; [--timeout S] silence after which a
    host counts as dead (default 30); [--compute-timeout S] the longest one step may compute (default 3600);
    [--backend cpu|webgpu|auto] the spawned hosts' backend (default cpu, or webgpu with --storage f16; on WebGPU
    the model's matrices run on the device, Star's and Ring's KV and flash too); [--storage f16] (WebGPU hosts)
    every host keeps weights and KV in f16 on its device; queries, states and Ring's KV travel over NATS in f32.
    Prints per-host phase-1 time, the query host's wait per layer in phase 2 and the bytes moved.`;

/** The options of `attend`'s hosts: the same servers, tokens and timeouts. */
export const GENERATE_HOSTS_OPTIONS = ATTEND_HOSTS_OPTIONS;

export interface HostsRun {
  v: Record<string, string | boolean | undefined>;
  spec: MethodSpec;
  modelPath: string;
  model: LoadedModel;
  ids: number[];
  maxTokens: number;
  chunk: number;
}

export async function generateAcrossHostsCommand(r: HostsRun): Promise<void> {
  const { v, spec } = r;
  if (spec.name !== 'star' && spec.name !== 'ring')
    throw new InputError(`--hosts runs star:... or ring across hosts, not '${spec.name}'`);
  const hosts = numberOption(v, 'hosts') ?? (spec.params.hosts !== undefined ? Number(spec.params.hosts) : undefined);
  if (hosts === undefined || !Number.isInteger(hosts) || hosts < 1)
    throw new InputError('--hosts H (a positive integer) is required to run across hosts');
  if (spec.params.hosts !== undefined && Number(spec.params.hosts) !== hosts)
    throw new InputError(`${spec.name}: hosts=${spec.params.hosts} in the method, but --hosts ${hosts}`);
  const storage = v.storage === undefined ? 'f32' : v.storage;
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  // The spawned hosts' backend (default cpu, the exact f32 baseline; f16 storage is for WebGPU hosts); hosts
  // joined with --nats chose theirs with `longctx host --backend` (and are refused if they cannot keep f16).
  const backend = v.backend === undefined ? (storage === 'f16' ? 'webgpu' : 'cpu') : backendOption(v);
  if (storage === 'f16' && backend === 'cpu')
    throw new InputError(
      '--storage f16 is for WebGPU hosts: CPU hosts keep weights and the KV cache in f32 (drop --storage, or use --backend webgpu)',
    );
  if (v.positions !== undefined) throw new UnsupportedError('--positions does not apply to a model across hosts yet');
  const star = spec.name === 'star' ? starParams(spec) : undefined;
  const timeout = numberOption(v, 'timeout') ?? 30;
  const computeTimeout = numberOption(v, 'compute-timeout') ?? 3600;
  const c = r.model.config;
  process.stderr.write(
    `generate: ${r.model.source} (${c.architecture}, ${c.layers} layers, ${c.hiddenSize} wide) across ${hosts} ` +
      `hosts (${backend}${storage === 'f16' ? ', f16 storage; f32 over NATS' : ''}); attention: ${spec.name}` +
      `${star ? ` blocks of ${star.block}, anchor ${star.anchor}, query ${star.query}` : ''}; ` +
      `prompt ${r.ids.length} tokens\n`,
  );
  const result = await generateAcrossHosts(r.ids, {
    modelPath: r.modelPath,
    model: r.model,
    rope: typeof v.rope === 'string' ? v.rope : undefined,
    storage,
    method: spec.name,
    block: star?.block,
    anchor: star?.anchor,
    query: star?.query,
    chunk: r.chunk,
    maxTokens: r.maxTokens,
    temperature: numberOption(v, 'temperature') ?? 0,
    topP: numberOption(v, 'top-p'),
    seed: numberOption(v, 'seed'),
    onText: (s) => process.stdout.write(s),
    cluster: {
      hosts,
      nats: v.nats as string | undefined,
      token: v.token as string | undefined,
      listen: v.listen as string | undefined,
      backend,
      storage: v.storage === undefined ? undefined : storage,
      timeoutMs: timeout * 1000,
      computeTimeoutMs: computeTimeout * 1000,
      log: (line) => process.stderr.write(`generate: ${line}\n`),
    },
  });
  process.stdout.write('\n');
  const rate = (n: number, s: number) => (s > 0 ? (n / s).toFixed(1) : '-');
  process.stderr.write(
    `generate: prefill ${r.ids.length} tokens in ${result.prefillSeconds.toFixed(3)} s; decode ${result.ids.length} ` +
      `tokens in ${result.decodeSeconds.toFixed(3)} s (${rate(Math.max(0, result.ids.length - 1), result.decodeSeconds)} tokens/s)` +
      `${result.stoppedAtEos ? '; stopped at EOS' : ''}\n`,
  );
  for (const line of result.report) process.stderr.write(`generate: ${line}\n`);
}
