// What the tests of a model across host processes share (star-model.test.ts on CPU hosts,
// star-model-gpu.test.ts on WebGPU hosts): a case, its run options, the one-process reference run and the
// run across a cluster's hosts, each giving the greedy ids and the prompt's logits.
import { uniformSchedule } from '../src/attention/sparse.js';
import { starParams } from '../src/attention/star.js';
import type { Cluster } from '../src/cluster/cluster.js';
import { DistributedDecoder, type ModelRunOptions } from '../src/cluster/star-model.js';
import { modelHash, type ModelStorage } from '../src/cluster/star-model-hash.js';
import { CpuDecoder, type Decoder } from '../src/model/forward/decoder-cpu.js';
import { generate } from '../src/model/generation/generate.js';
import type { LoadedModel } from '../src/model/types.js';

export const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

export interface Case {
  name: string;
  model: LoadedModel;
  path: string;
  ids: number[];
  spec: string;
  newTokens: number;
}

export function runOptions(
  c: Case,
  spec: string,
  hosts: number,
  timeoutMs = 20_000,
  storage: ModelStorage = 'f32',
): ModelRunOptions {
  const star = spec.startsWith('star') ? starParams(spec) : undefined;
  return {
    model: c.path,
    hash: modelHash(c.model, storage),
    storage,
    config: c.model.config,
    plan: {
      method: star ? 'star' : 'ring',
      block: star?.block ?? c.ids.length,
      anchor: star?.anchor ?? 0,
      query: star?.query ?? 0,
      promptTokens: c.ids.length,
      newTokens: c.newTokens,
      chunk: 64,
    },
    timeoutMs,
    hosts,
  };
}

/** Greedy ids and the prompt's logits of one decoder (reset between the two). */
export async function greedy(d: Decoder, c: Case) {
  try {
    const logits = (await d.forward(c.ids)).slice();
    d.reset();
    const r = await generate(d, c.model.tokenizer, c.ids, { maxTokens: c.newTokens, temperature: 0, stopAtEos: false });
    return { ids: r.ids, logits };
  } finally {
    d.destroy();
  }
}

/** Greedy ids and the prompt's logits in one process (star layers with the same blocks, or flash for ring). */
export function oneProcess(c: Case, spec: string) {
  const schedule = uniformSchedule(spec.startsWith('ring') ? 'flash' : spec);
  return greedy(new CpuDecoder(c.model, schedule, { maxTokens: c.ids.length + c.newTokens, chunk: 64 }), c);
}

export async function acrossHosts(cluster: Cluster, c: Case, spec: string, hosts: number, storage?: ModelStorage) {
  const d = await DistributedDecoder.start(cluster, runOptions(c, spec, hosts, undefined, storage));
  try {
    let logits: Float32Array | undefined;
    const probe = {
      config: d.config,
      position: 0,
      cacheBytes: 0,
      reset: () => {},
      destroy: () => {},
      forward: async (t: readonly number[]) => {
        const l = await d.forward(t);
        logits ??= l.slice();
        return l;
      },
    };
    const r = await generate(probe, c.model.tokenizer, c.ids, {
      maxTokens: c.newTokens,
      temperature: 0,
      stopAtEos: false,
    });
    return { ids: r.ids, logits: logits!, report: d.report(), timings: d.timings, plans: d.hostPlans };
  } finally {
    d.destroy();
  }
}
