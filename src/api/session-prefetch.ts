// A saved session's layer arrays read from the file while the layer before them restores (loadSession). Reading
// a multi-GiB file into fresh memory runs at ~1-1.5 GB/s (the kernel zeroes and maps every new page as the read
// touches it; into pages already mapped the same read does 4-5 GB/s), and every fresh buffer is more external
// memory for V8 to collect. So two sets of buffers take turns: layer i+1 is read into one, on libuv's threads in
// pieces issued together, while layer i restores from the other; layer i+2 goes into layer i's buffers once its
// restore has returned (restoreCache copies what it keeps: attention/layer.ts). The file is never held whole.
import { read } from 'node:fs';
import type { LayerCacheState, SavedArray } from '../attention/layer.js';
import { InputError } from '../errors.js';
import { formatBytes } from '../io/limits.js';
import type { PendingCaches } from '../model/forward/decoder-cpu.js';
import { arrayOf, type ArrayEntry } from './session-arrays.js';
import type { SessionLayout } from './session-file.js';

const noop = () => {};

/** Bytes one read moves: pieces of an array are read side by side on libuv's threads (4 by default). */
const PIECE = 64 << 20;

/** The layers of a session file on their way (see above); `start` begins reading, `settled` waits for every read. */
export interface PrefetchedCaches {
  caches: PendingCaches;
  start(): void;
  /** Resolves once no read is under way (so the file may be closed), whatever became of them. */
  settled(): Promise<void>;
  /** Lets the read buffers go once the restore has returned (a caller that lives on after it). */
  release(): void;
  /** Seconds during which a read of the layers was under way, and seconds the restore waited for one. */
  readonly readSeconds: number;
  readonly waitSeconds: number;
}

const readAt = (fd: number, out: Uint8Array, from: number, bytes: number, at: number) =>
  new Promise<number>((resolve, reject) => read(fd, out, from, bytes, at, (e, n) => (e ? reject(e) : resolve(n))));

async function fill(fd: number, out: Uint8Array, from: number, bytes: number, at: number, name: string) {
  for (let done = 0; done < bytes; ) {
    const n = await readAt(fd, out, from + done, bytes - done, at + done);
    if (n === 0) throw new InputError(`${name}: the file ended at ${at + done} bytes (truncated while read?)`);
    done += n;
  }
}

/** One checked array read into `out` (its e.bytes first bytes, at offset 0: aligned for any element size). */
async function readArray(fd: number, at: number, e: ArrayEntry, out: Uint8Array, name: string): Promise<SavedArray> {
  const pieces: Promise<void>[] = [];
  for (let p = 0; p < e.bytes; p += PIECE) pieces.push(fill(fd, out, p, Math.min(PIECE, e.bytes - p), at + p, name));
  // Every piece ends before the array is given (or failed): no read into it outlives the call.
  const ends = await Promise.allSettled(pieces);
  const failed = ends.find((x) => x.status === 'rejected');
  if (failed) {
    const e = (failed as PromiseRejectedResult).reason as Error;
    throw e instanceof InputError ? e : new InputError(`cannot read session ${name}: ${e.message}`);
  }
  return arrayOf(e, out);
}

/**
 * Layer i of `layout` as a function restoreCaches awaits: it starts the read of layer i+1 and gives layer i once
 * read, its arrays valid until layer i+1's function is called. `fd` must stay open until settled(). Every array's
 * size is checked against `maxBuffer` here, before any is allocated.
 */
export function prefetchCaches(
  fd: number,
  layout: Required<SessionLayout>,
  name: string,
  maxBuffer: number,
): PrefetchedCaches {
  const { caches } = layout;
  for (const l of caches.layers)
    for (const e of Object.values(l.arrays))
      if (e.bytes > maxBuffer)
        throw new InputError(
          `${name}: an array of the file is ${formatBytes(e.bytes)}, more than one buffer of ${formatBytes(maxBuffer)}`,
        );
  const count = caches.layers.length;
  // The buffers layer i is read into: turns[i % 2], one per array name, grown when a layer's array is larger.
  const turns = [new Map<string, ArrayBuffer>(), new Map<string, ArrayBuffer>()];
  const bufferFor = (i: number, key: string, bytes: number) => {
    const turn = turns[i % 2];
    let b = turn.get(key);
    if (!b || b.byteLength < bytes) turn.set(key, (b = new ArrayBuffer(bytes)));
    return new Uint8Array(b, 0, bytes);
  };
  const inFlight = new Map<number, Promise<LayerCacheState>>();
  const all: Promise<void>[] = [];
  let begun = 0;
  let active = 0;
  let since = 0;
  const times = { readSeconds: 0, waitSeconds: 0 };
  const readLayer = async (i: number): Promise<LayerCacheState> => {
    if (active++ === 0) since = performance.now();
    try {
      const l = caches.layers[i];
      const keys = Object.keys(l.arrays);
      const reads = keys.map((k) => {
        const e = l.arrays[k];
        return readArray(fd, caches.regionAt + e.offset, e, bufferFor(i, k, e.bytes), name);
      });
      // All settled before the layer fails: settled() promises no read of the file is left under way.
      await Promise.allSettled(reads);
      const arrays = await Promise.all(reads);
      return { ...l.state, arrays: Object.fromEntries(keys.map((k, j) => [k, arrays[j]])) };
    } finally {
      if (--active === 0) times.readSeconds += (performance.now() - since) / 1000;
    }
  };
  const start = (upTo: number) => {
    for (; begun <= upTo && begun < count; begun++) {
      const p = readLayer(begun);
      inFlight.set(begun, p);
      // Its end alone, not its arrays (which would then live as long as this): a read no restore awaits (the
      // restore stopped at a layer before) fails quietly.
      all.push(p.then(noop, noop));
    }
  };
  const layers = caches.layers.map((_, i) => async () => {
    start(i + 1);
    const p = inFlight.get(i);
    if (!p) throw new InputError(`${name}: layer ${i}'s arrays were asked for twice`);
    inFlight.delete(i); // held by the restore alone from here, so freed once it is done with them
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      times.waitSeconds += (performance.now() - t0) / 1000;
    }
  });
  return {
    caches: { position: layout.ids.length, promptTokens: layout.header.caches?.promptTokens, layers },
    start: () => start(0),
    settled: async () => {
      await Promise.allSettled(all);
    },
    release: () => {
      for (const turn of turns) turn.clear();
    },
    get readSeconds() {
      return times.readSeconds;
    },
    get waitSeconds() {
      return times.waitSeconds;
    },
  };
}
