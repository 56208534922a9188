// `longctx attend`: q, k, v as .npy in, the attention state (output, LSE) as .npy out.
import { attention } from '../attention/attention.js';
import { parseMethodSpec } from '../attention/spec.js';
import type { IndexerInputs } from '../attention/dsa.js';
import { readNpy, writeNpy } from '../io/npy.js';
import { acquireDevice } from '../runtime/device.js';
import { tensor } from '../tensor.js';
import { backendOption, numberOption, parse, required } from './args.js';
import { ATTEND_HOSTS_OPTIONS, ATTEND_HOSTS_USAGE, attendAcrossHosts, wantsHosts } from './attend-hosts.js';

export const ATTEND_USAGE = `usage: longctx attend --q q.npy --k k.npy --v v.npy --method SPEC --out out.npy
                      [--lse lse.npy] [--backend cpu|webgpu|auto] [--no-causal] [--scale S]
  q [Hq, Nq, D], k and v [Hkv, Nk, D], float32 or float16; out float32 [Hq, Nq, D]; lse float32 [Hq, Nq].
  SPEC: dense | flash[:variant=auto|portable|subgroup-matrix|tc2] | window:left=L[,right=R]
        | sinks:tokens=S,left=L | hybrid:every=E,window=W,layer=N (that layer's method)
        | cca:group=G,window=W[,variant=auto|portable|subgroup-matrix|tc2-128x32|tc2-64x32] (CCA-Attention: a
          pooled core per G tokens + W raw keys; causal; defaults 16, 1024)
        | star:block=B[,anchor=A][,query=Q][,hosts=H] (Star Attention: blocks of B with an anchor of
          the first A tokens; the last Q positions see all before them) | ring[:hosts=H] (exact)
        | dsa[:topk=K][,indexer=int8|float] (DeepSeek Sparse Attention, default topk 2048; needs
          --index-q iq.npy [H_I, Nq, D_I] --index-k ik.npy [Nk, D_I] --index-w w.npy [Nq, H_I])
${ATTEND_HOSTS_USAGE}`;

export async function attendCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    q: { type: 'string' },
    k: { type: 'string' },
    v: { type: 'string' },
    method: { type: 'string' },
    out: { type: 'string' },
    lse: { type: 'string' },
    backend: { type: 'string' },
    'no-causal': { type: 'boolean' },
    scale: { type: 'string' },
    'index-q': { type: 'string' },
    'index-k': { type: 'string' },
    'index-w': { type: 'string' },
    ...ATTEND_HOSTS_OPTIONS,
  });
  const spec = parseMethodSpec(required(v, 'method'));
  const backend = backendOption(v);
  const out = required(v, 'out');
  const [q, k, vv] = [readNpy(required(v, 'q')), readNpy(required(v, 'k')), readNpy(required(v, 'v'))];
  if (wantsHosts(v)) return attendAcrossHosts(v, spec, q, k, vv, out);
  const device = await acquireDevice(backend);
  try {
    const t0 = performance.now();
    const index = spec.name === 'dsa' ? readIndexerInputs(v) : undefined;
    const state = await attention(device, q, k, vv, spec, {
      causal: !v['no-causal'],
      scale: numberOption(v, 'scale'),
      index,
    });
    const ms = performance.now() - t0;
    writeNpy(out, tensor([state.heads, state.queries, state.headDim], 'f32', state.o));
    if (typeof v.lse === 'string') writeNpy(v.lse, tensor([state.heads, state.queries], 'f32', state.lse));
    process.stderr.write(
      `attend: ${spec.name} on ${device.name}: [${state.heads}, ${state.queries}, ${state.headDim}] in ${ms.toFixed(1)} ms\n`,
    );
  } finally {
    device.destroy();
  }
}

/** dsa's indexer inputs from --index-q/-k/-w; a missing one is an InputError (exit code 2). */
function readIndexerInputs(v: Record<string, unknown>): IndexerInputs {
  return { q: readNpy(required(v, 'index-q')), k: readNpy(required(v, 'index-k')), w: readNpy(required(v, 'index-w')) };
}
