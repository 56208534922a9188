// One generation with a model spread over hosts from start to finish (what `longctx generate --hosts H`
// does): bring up the cluster (a private loopback server and H spawned hosts, or the user's server), load
// the model on every host, generate, and tear down whatever this call started, also on errors.
import type { LoadedModel } from '../model/types.js';
import { generate, type GenerateOptions, type GenerateResult } from '../model/generation/generate.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import { DistributedDecoder, type ModelRunOptions, type ModelRunTimings } from './star-model.js';
import { modelHash, type ModelStorage } from './star-model-hash.js';

export interface HostsGenerateOptions extends GenerateOptions {
  /** The path every host loads. */
  modelPath: string;
  /** The coordinator's copy (tokenizer, config, and the hash hosts must match). */
  model: LoadedModel;
  rope?: string;
  /** Every host's storage (f16: WebGPU hosts, weights and KV in f16 on the device). */
  storage?: ModelStorage;
  method: 'star' | 'ring';
  block?: number;
  anchor?: number;
  query?: number;
  chunk?: number;
  cluster: ClusterOptions;
}

export interface HostsGenerateResult extends GenerateResult {
  timings: ModelRunTimings;
  report: string[];
}

export async function generateAcrossHosts(promptIds: number[], o: HostsGenerateOptions): Promise<HostsGenerateResult> {
  const timeoutMs = o.cluster.timeoutMs ?? 30_000;
  const run: ModelRunOptions = {
    model: o.modelPath,
    hash: modelHash(o.model, o.storage),
    storage: o.storage,
    config: o.model.config,
    rope: o.rope,
    plan: {
      method: o.method,
      block: o.block ?? promptIds.length,
      anchor: o.anchor ?? o.block ?? promptIds.length,
      query: o.query ?? 0,
      promptTokens: promptIds.length,
      newTokens: o.maxTokens,
      chunk: o.chunk ?? 512,
    },
    timeoutMs,
    computeTimeoutMs: o.cluster.computeTimeoutMs,
  };
  const cluster = await Cluster.start(o.cluster);
  try {
    const decoder = await DistributedDecoder.start(cluster, run);
    try {
      const r = await generate(decoder, o.model.tokenizer, promptIds, o);
      return { ...r, timings: decoder.timings, report: decoder.report() };
    } finally {
      decoder.destroy();
    }
  } finally {
    await cluster.close();
  }
}
