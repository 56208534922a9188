// A host's side of a model spread over hosts (star-model.ts is the coordinator's): requests model-load
// (load the model, build the decoder with this host's layers, answer the model's hash), model-prefill
// (phase 1 over this host's runs; the query host then its query tokens), model-step (the query host: one
// generated token), model-attend (a context host: the query host's q of one layer over its cache) and
// model-drop. Ring KV shards go host to host as mailbox deliveries during phase 1.
// Storage: the run's (f32, or f16 on WebGPU: the decoder's weights and KV in f16 on the device), unless this
// host was started with its own (`longctx host --storage`); a host that cannot keep the run's storage (its
// own differs, or it has no GPU for f16) answers its storage and hash without building a decoder, and the
// coordinator refuses it. Tensors over NATS stay f32 in either storage.
import { HostError, ShapeError } from '../errors.js';
import { tensor, type Tensor } from '../tensor.js';
import { uniformSchedule } from '../attention/sparse.js';
import { CpuDecoder, type DecoderOptions } from '../model/forward/decoder-cpu.js';
import { GpuDecoder } from '../model/forward/decoder-gpu.js';
import { loadModel } from '../model/load/load.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../model/load/random-model.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import type { LoadedModel } from '../model/types.js';
import { addSplits, RemoteLayer, type Phase2Split, type StateChannel } from '../model/caches/remote-layer.js';
import { StarHostLayer, type HostLayerPlan, type KvShard, type RingExchange } from '../model/caches/star-host-layer.js';
import { StarHostFlashGpuLayer } from '../model/caches/star-host-layer-flash-gpu.js';
import type { LayerDims } from '../attention/layer.js';
import { stateFrom, stateTensors, type Envelope, type Meta } from './codec.js';
import { hostRequestHandlers, type HostServices } from './host.js';
import { hostParts, type HostPart, type ModelRunPlan } from './star-model-layout.js';
import { modelHash, type ModelStorage } from './star-model-hash.js';
import type { Peer } from './transport.js';

/** What a host needs of its layers: the query host's wait, and a context host's answers. */
type HostLayer = Pick<StarHostLayer, 'waitMs' | 'split' | 'contextState'>;

/** What a host needs of its decoder, CPU or WebGPU. */
type HostDecoder = Pick<CpuDecoder, 'forward' | 'skipTo' | 'destroy' | 'cacheBytes' | 'config' | 'plans'>;

/** A context host as the others name it: its inbox, and how errors name it. */
export interface PeerHost {
  inbox: string;
  who: string;
}

interface ModelRun {
  plan: ModelRunPlan;
  part: HostPart;
  index: number;
  decoder: HostDecoder;
  layers: HostLayer[];
  remotes: RemoteLayer[][];
  /** Settles when phase 1 is done: context hosts answer model-attend only then. */
  prefilled: Promise<void>;
  settle(e?: Error): void;
  ring?: RingExchange & { bytes: number };
}

const runs = new Map<string, ModelRun>();
let modelOverride: string | undefined;
let storageOverride: ModelStorage | undefined;
const cached = new Map<string, LoadedModel>();

/** A model source: a file or directory, or `random:llama-3.2-1b[:layers=L]` (benchmarks; no tokenizer). */
export function loadModelSource(source: string): LoadedModel {
  const hit = cached.get(source);
  if (hit) return hit;
  let m: LoadedModel;
  const random = /^random:llama-3\.2-1b(?::layers=(\d+))?$/.exec(source);
  if (random) {
    const layers = random[1] ? Number(random[1]) : LLAMA_3_2_1B_SHAPE.layers;
    m = { ...randomModel({ ...LLAMA_3_2_1B_SHAPE, layers }, 1), source };
  } else m = loadModel(source);
  cached.clear(); // one model at a time in a host
  cached.set(source, m);
  return m;
}

/**
 * Serves model runs on this process's hosts; `model` replaces the path coordinators send (a local copy),
 * `storage` fixes this host's storage (runs asking another are refused).
 */
export function serveModelRuns(model?: string, storage?: ModelStorage): void {
  modelOverride = model;
  storageOverride = storage;
  hostRequestHandlers.set('model-load', load);
  hostRequestHandlers.set('model-prefill', prefill);
  hostRequestHandlers.set('model-step', step);
  hostRequestHandlers.set('model-attend', attend);
  hostRequestHandlers.set('model-drop', drop);
}

const key = (host: HostServices, run: unknown) => `${host.id}:${String(run)}`;

function runOf(e: Envelope, host: HostServices): ModelRun {
  const r = runs.get(key(host, e.meta.run));
  if (!r) throw new HostError(`host ${host.id} has no model run '${String(e.meta.run)}' loaded`, host.id);
  return r;
}

async function load(e: Envelope, host: HostServices): Promise<{ meta: Meta }> {
  const m = e.meta;
  const t0 = performance.now();
  const source = modelOverride ?? String(m.model);
  let model = loadModelSource(source);
  if (typeof m.rope === 'string') model = { ...model, config: { ...model.config, rope: parseRopeSpec(m.rope) } };
  const asked: ModelStorage = m.storage === 'f16' ? 'f16' : 'f32';
  const gpu = host.device.gpu;
  const storage: ModelStorage = gpu ? (storageOverride ?? asked) : 'f32';
  const hash = modelHash(model, storage);
  if (storage !== asked) {
    const why = gpu ? `started with --storage ${storage}` : `it runs on the CPU (${host.device.name})`;
    return { meta: { hash, storage, why, source: model.source, ms: performance.now() - t0, layerPlan: '' } };
  }
  const plan = m.plan as ModelRunPlan;
  const index = Number(m.index);
  const part = hostParts(plan)[index];
  const peers = m.peers as PeerHost[];
  const timeoutMs = Number(m.timeoutMs);
  const remotes: RemoteLayer[][] = [];
  const layers: HostLayer[] = [];
  const ring = plan.method === 'ring' ? ringExchange(host.peer, String(m.run), index, peers, timeoutMs) : undefined;
  const layerPlan = (i: number, dims: LayerDims): HostLayerPlan => {
    const mine = part.queryHost
      ? peers.slice(0, index).map((p) => new RemoteLayer(i, dims, stateChannel(host.peer, String(m.run), p, timeoutMs)))
      : [];
    remotes.push(mine);
    const { method, block, anchor } = plan;
    return {
      method,
      context: part.context,
      block,
      anchor,
      anchorCopy: part.anchorCopy,
      capacity: part.capacity,
      remotes: mine,
      ring,
    };
  };
  const opts: DecoderOptions = {
    maxTokens: plan.promptTokens + plan.newTokens,
    storage,
    chunk: part.chunk,
    cpuLayer: (i, dims) => {
      const layer = new StarHostLayer(i, dims, layerPlan(i, dims));
      layers.push(layer);
      return layer;
    },
    // On WebGPU, Star's and Ring's layers keep the host's KV on the device and attend by flash there; a Ring
    // shard travels as f32 host arrays (read back, sent, uploaded by the later hosts).
    gpuLayer: gpu
      ? async (i, dims) => {
          const layer = await StarHostFlashGpuLayer.create(gpu, i, dims, layerPlan(i, dims));
          layers.push(layer);
          return layer;
        }
      : undefined,
  };
  const decoder: HostDecoder = gpu
    ? await GpuDecoder.create(gpu, model, uniformSchedule('flash'), opts)
    : new CpuDecoder(model, uniformSchedule('flash'), opts);
  let settle: (e?: Error) => void = () => {};
  const prefilled = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  prefilled.catch(() => {});
  const old = runs.get(key(host, m.run));
  old?.decoder.destroy();
  runs.set(key(host, m.run), { plan, part, index, decoder, layers, remotes, prefilled, settle, ring });
  const meta = { hash, storage, source: model.source, ms: performance.now() - t0, layerPlan: decoder.plans[0] ?? '' };
  return { meta };
}

async function prefill(e: Envelope, host: HostServices): Promise<{ meta: Meta; tensors?: Record<string, Tensor> }> {
  const r = runOf(e, host);
  const ids = e.meta.ids as number[];
  const t0 = performance.now();
  let logits: Float32Array | undefined;
  let phase1Ms = 0;
  try {
    for (const [s, end] of r.part.runs) {
      if (s >= r.part.context && phase1Ms === 0) {
        phase1Ms = performance.now() - t0;
        r.settle();
      }
      r.decoder.skipTo(s);
      logits = await r.decoder.forward(ids.slice(s, end));
    }
    // A ring host with an empty shard still answers every layer: the later hosts wait for each.
    if (r.ring && r.part.runs.length === 0)
      for (let l = 0; l < r.layers.length; l++)
        await r.ring.share(l, { k: new Float32Array(0), v: new Float32Array(0), tokens: 0 });
    if (phase1Ms === 0) phase1Ms = performance.now() - t0;
    r.settle();
  } catch (err) {
    r.settle(err as Error);
    throw err;
  }
  const meta = { phase1Ms, ms: performance.now() - t0, ...stats(r) };
  return { meta, tensors: logits && r.part.queryHost ? { logits: tensor([logits.length], 'f32', logits) } : {} };
}

async function step(e: Envelope, host: HostServices): Promise<{ meta: Meta; tensors: Record<string, Tensor> }> {
  const r = runOf(e, host);
  if (!r.part.queryHost) throw new HostError(`host ${host.id} is not the query host of this run`, host.id);
  const t0 = performance.now();
  const logits = await r.decoder.forward([Number(e.meta.id)]);
  return {
    meta: { ms: performance.now() - t0, ...stats(r) },
    tensors: { logits: tensor([logits.length], 'f32', logits) },
  };
}

/** The query host's waits per layer and bytes moved so far; every host's cache bytes. */
function stats(r: ModelRun): Meta {
  return {
    waitMs: r.layers.map((l) => l.waitMs),
    split: addSplits(r.layers.map((l) => l.split)) satisfies Phase2Split,
    bytes: r.remotes.flat().reduce((a, x) => a + x.bytes, 0) + (r.ring?.bytes ?? 0),
    cacheBytes: r.decoder.cacheBytes,
  };
}

async function attend(
  e: Envelope,
  host: HostServices,
): Promise<{ meta: Meta; tensors: Record<string, Tensor>; flush: boolean }> {
  const t0 = performance.now();
  const r = runOf(e, host);
  await r.prefilled;
  const layer = r.layers[Number(e.meta.layer)];
  const q = e.tensors.q?.data;
  const tokens = Number(e.meta.tokens);
  const c = r.decoder.config;
  if (!layer || !(q instanceof Float32Array) || !(tokens > 0) || q.length !== c.heads * tokens * c.headDim)
    throw new ShapeError(
      `model-attend: layer ${String(e.meta.layer)} of ${r.layers.length}, ${tokens} tokens of ${c.heads} x ${c.headDim} f32 queries expected`,
    );
  const state = await layer.contextState(q, tokens);
  const arrived = e.arrivedMs ?? t0;
  return { meta: { hostMs: performance.now() - arrived }, tensors: stateTensors('s', state), flush: false };
}

async function drop(e: Envelope, host: HostServices): Promise<{ meta: Meta }> {
  const k = key(host, e.meta.run);
  runs.get(k)?.decoder.destroy();
  runs.delete(k);
  host.peer.dropMail(`${String(e.meta.run)}:`);
  return { meta: { ok: true } };
}

function stateChannel(peer: Peer, run: string, to: PeerHost, timeoutMs: number): StateChannel {
  return {
    who: to.who,
    attend: async (layer, q, tokens, start) => {
      const got = await peer.request(
        to.inbox,
        { kind: 'model-attend', run, layer, tokens, start },
        { q: tensor([1, q.length], 'f32', q) },
        timeoutMs,
        to.who,
        undefined,
        false,
      );
      return { ...stateFrom(got.tensors, 's'), hostMs: Number(got.meta.hostMs) || 0 };
    },
  };
}

/** Ring phase 1: this host's KV of each layer goes to every later host; earlier hosts' KV is taken. */
function ringExchange(
  peer: Peer,
  run: string,
  index: number,
  peers: PeerHost[],
  timeoutMs: number,
): RingExchange & { bytes: number } {
  const later = peers.slice(index + 1);
  const x = {
    bytes: 0,
    share: async (layer: number, kv: KvShard) => {
      const tensors = { k: tensor([1, kv.k.length], 'f32', kv.k), v: tensor([1, kv.v.length], 'f32', kv.v) };
      const meta = { mailbox: `${run}:kv:${layer}:${index}`, tokens: kv.tokens };
      await Promise.all(later.map((p) => peer.send(p.inbox, meta, tensors)));
      x.bytes += later.length * 8 * kv.k.length;
    },
    earlier: async (layer: number) => {
      const out: KvShard[] = [];
      for (let j = 0; j < index; j++) {
        const got = await peer.take(`${run}:kv:${layer}:${j}`, timeoutMs, peers[j].who);
        out.push({
          k: got.tensors.k.data as Float32Array,
          v: got.tensors.v.data as Float32Array,
          tokens: Number(got.meta.tokens),
        });
      }
      return out;
    },
  };
  return x;
}
