// One distributed attention call from start to finish (what `longctx attend --hosts/--nats` does):
// bring up the cluster, run, and tear down whatever this call started, also on errors.
import type { Tensor } from '../tensor.js';
import type { AttentionOptions } from '../spine/problem.js';
import type { MethodSpec } from '../attention/spec.js';
import { Cluster, type ClusterOptions, type DistributedResult } from './cluster.js';

export async function distributedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  method: MethodSpec | string,
  cluster: ClusterOptions,
  opts: AttentionOptions = {},
): Promise<DistributedResult> {
  const c = await Cluster.start(cluster);
  try {
    return await c.attention(q, k, v, method, opts);
  } finally {
    await c.close();
  }
}
