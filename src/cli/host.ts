// `longctx host`: a context host for Star and Ring attention, serving one NATS server until it stops.
import { InputError } from '../errors.js';
import { acquireDevice } from '../runtime/device.js';
import { startHost } from '../cluster/host.js';
import { serveModelRuns } from '../cluster/star-model-host.js';
import { backendOption, parse, required } from './args.js';

export const HOST_USAGE = `usage: longctx host --nats URL [--token T] [--backend cpu|webgpu|auto] [--id NAME] [--exit-with-stdin]
                    [--model F] [--storage f32|f16]
  Serves Star/Ring attention steps for coordinators on that NATS server (\`longctx attend --nats URL
  --hosts H ...\`), and its part of a model spread over hosts (\`longctx generate --nats URL --hosts H ...\`):
  --model F loads this copy instead of the path the coordinator names (its hash must match).
  --storage f16 (WebGPU): this host's decoder keeps weights and KV in f16 on the device, and serves only runs
  in f16 (\`generate --storage f16\`; without --storage the host keeps the run's storage). What travels over
  NATS (queries, states, Ring's KV) stays f32.
  The token may come from LONGCTX_NATS_TOKEN instead of the command line.
  --exit-with-stdin: stop when stdin closes (how a coordinator that spawned the host takes it down with
  it, even when the coordinator is killed). A heartbeat on longctx.alive.<id> shows the host is alive.`;

export async function hostCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    nats: { type: 'string' },
    token: { type: 'string' },
    backend: { type: 'string' },
    id: { type: 'string' },
    'exit-with-stdin': { type: 'boolean' },
    model: { type: 'string' },
    storage: { type: 'string' },
  });
  const storage = v.storage as string | undefined;
  if (storage !== undefined && storage !== 'f32' && storage !== 'f16')
    throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  if (storage === 'f16' && backendOption(v) === 'cpu')
    throw new InputError(
      '--storage f16 is for WebGPU: the CPU backend keeps weights and the KV cache in f32 (drop --storage, or use --backend webgpu)',
    );
  serveModelRuns(v.model as string | undefined, storage);
  const url = required(v, 'nats');
  const token = (v.token as string | undefined) ?? process.env.LONGCTX_NATS_TOKEN;
  if (token === undefined)
    throw new InputError("--token (or LONGCTX_NATS_TOKEN) is required: the server's authorization token");
  const device = await acquireDevice(backendOption(v));
  try {
    const host = await startHost({
      url,
      token,
      device,
      id: v.id as string | undefined,
      log: (line) => process.stderr.write(`longctx host: ${line}\n`),
      parentPid: v['exit-with-stdin'] ? process.ppid : undefined,
    });
    const stop = () => {
      void host.close();
      // A close that hangs (a kernel still running) must not keep the process: exit regardless.
      setTimeout(() => process.exit(1), 5_000).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (v['exit-with-stdin']) {
      process.stdin.on('error', stop);
      process.stdin.on('close', stop);
      process.stdin.on('end', stop);
      process.stdin.resume();
    }
    await host.done;
    process.stdin.destroy(); // let the process end once the host is done
  } finally {
    device.destroy();
  }
}
