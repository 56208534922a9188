// Binary messages between hosts: a small JSON header (kind, ids, shapes; never tensor values) followed by
// the tensors' raw little-endian f32/f16 bytes, cut into chunks that fit under the server's max payload.
//   message = u32 magic | u32 header bytes | header JSON | tensor bytes, one tensor after another
//   chunk   = u32 magic | u32 sender | u32 message id | u32 chunk count | f64 offset | f64 total bytes | bytes
import { InputError } from '../errors.js';
import { numel, tensor, type DType, type Tensor } from '../tensor.js';
import type { AttentionState } from '../spine/state.js';

const MESSAGE_MAGIC = 0x3158434c; // 'LCX1'
const CHUNK_MAGIC = 0x3143434c; // 'LCC1'
export const CHUNK_HEADER_BYTES = 32;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
  throw new Error('longctx hosts need a little-endian machine (raw tensor bytes travel as they lie in memory)');

export type Meta = Record<string, unknown>;

export interface Envelope {
  meta: Meta;
  tensors: Record<string, Tensor>;
  /** When its last chunk came off the connection (performance.now() of the receiving process). */
  arrivedMs?: number;
}

interface TensorHeader {
  name: string;
  dtype: DType;
  shape: number[];
}

const bytesOf = (t: Tensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** The message as a list of byte ranges (no copy of tensor data). */
export function encodeMessage(meta: Meta, tensors: Record<string, Tensor> = {}): Uint8Array[] {
  const list: TensorHeader[] = Object.entries(tensors).map(([name, t]) => ({
    name,
    dtype: t.dtype,
    shape: [...t.shape],
  }));
  const header = new TextEncoder().encode(JSON.stringify({ meta, tensors: list }));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setUint32(0, MESSAGE_MAGIC, true);
  new DataView(prefix.buffer).setUint32(4, header.byteLength, true);
  return [prefix, header, ...Object.values(tensors).map(bytesOf)];
}

export function decodeMessage(bytes: Uint8Array): Envelope {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || view.getUint32(0, true) !== MESSAGE_MAGIC)
    throw new InputError('not a longctx message (bad magic)');
  const headerBytes = view.getUint32(4, true);
  const { meta, tensors: list } = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerBytes))) as {
    meta: Meta;
    tensors: TensorHeader[];
  };
  let at = 8 + headerBytes;
  const tensors: Record<string, Tensor> = {};
  for (const h of list) {
    const n = numel(h.shape);
    const size = n * (h.dtype === 'f32' ? 4 : 2);
    if (at + size > bytes.byteLength)
      throw new InputError(`message truncated: tensor '${h.name}' needs ${size} bytes at ${at} of ${bytes.byteLength}`);
    // Copy into a fresh, aligned buffer: typed arrays need 2- or 4-byte alignment (and a Node Buffer's
    // slice() would share its pool rather than copy).
    const copy = new Uint8Array(size);
    copy.set(bytes.subarray(at, at + size));
    const raw = copy.buffer;
    tensors[h.name] = tensor(h.shape, h.dtype, h.dtype === 'f32' ? new Float32Array(raw) : new Uint16Array(raw));
    at += size;
  }
  return { meta, tensors };
}

/** Cuts a message into chunks of at most `maxPayload` bytes each. */
export function* chunkMessage(
  parts: Uint8Array[],
  maxPayload: number,
  sender: number,
  id: number,
): Generator<Uint8Array> {
  const room = maxPayload - CHUNK_HEADER_BYTES;
  if (room < 1024)
    throw new InputError(`the NATS server's max payload (${maxPayload} bytes) is too small for longctx chunks`);
  const total = parts.reduce((a, p) => a + p.byteLength, 0);
  const count = Math.max(1, Math.ceil(total / room));
  let part = 0;
  let inPart = 0;
  for (let c = 0; c < count; c++) {
    const offset = c * room;
    const size = Math.min(room, total - offset);
    const chunk = new Uint8Array(CHUNK_HEADER_BYTES + size);
    const view = new DataView(chunk.buffer);
    view.setUint32(0, CHUNK_MAGIC, true);
    view.setUint32(4, sender, true);
    view.setUint32(8, id, true);
    view.setUint32(12, count, true);
    view.setFloat64(16, offset, true);
    view.setFloat64(24, total, true);
    let filled = 0;
    while (filled < size) {
      const take = Math.min(size - filled, parts[part].byteLength - inPart);
      chunk.set(parts[part].subarray(inPart, inPart + take), CHUNK_HEADER_BYTES + filled);
      filled += take;
      inPart += take;
      if (inPart === parts[part].byteLength) {
        part++;
        inPart = 0;
      }
    }
    yield chunk;
  }
}

/** Collects chunks (from any number of senders, in any order) into whole messages. */
export class Reassembler {
  private readonly open = new Map<string, { bytes: Uint8Array; left: number }>();

  /** Returns the whole message once its last chunk arrives. */
  add(chunk: Uint8Array): Uint8Array | undefined {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (chunk.byteLength < CHUNK_HEADER_BYTES || view.getUint32(0, true) !== CHUNK_MAGIC)
      throw new InputError('not a longctx chunk (bad magic)');
    const key = `${view.getUint32(4, true)}:${view.getUint32(8, true)}`;
    const count = view.getUint32(12, true);
    const offset = view.getFloat64(16, true);
    const total = view.getFloat64(24, true);
    if (count === 1) return chunk.subarray(CHUNK_HEADER_BYTES);
    let entry = this.open.get(key);
    if (!entry) {
      entry = { bytes: new Uint8Array(total), left: count };
      this.open.set(key, entry);
    }
    entry.bytes.set(chunk.subarray(CHUNK_HEADER_BYTES), offset);
    if (--entry.left > 0) return undefined;
    this.open.delete(key);
    return entry.bytes;
  }

  get pending(): number {
    return this.open.size;
  }
}

/** An attention state as two tensors, `<name>.o` and `<name>.lse`. */
export function stateTensors(name: string, s: AttentionState): Record<string, Tensor> {
  return {
    [`${name}.o`]: tensor([s.heads, s.queries, s.headDim], 'f32', s.o),
    [`${name}.lse`]: tensor([s.heads, s.queries], 'f32', s.lse),
  };
}

export function stateFrom(tensors: Record<string, Tensor>, name: string): AttentionState {
  const o = tensors[`${name}.o`];
  const lse = tensors[`${name}.lse`];
  if (!o || !lse) throw new InputError(`message has no state '${name}'`);
  const [heads, queries, headDim] = o.shape;
  return { heads, queries, headDim, o: o.data as Float32Array, lse: lse.data as Float32Array };
}
