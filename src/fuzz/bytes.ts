// Byte-level mutators shared by every format: bit flips, interesting bytes and integers written over
// counts and offsets, truncation, extension, and ranges deleted, duplicated or moved.
import { INTERESTING_INTS, type Random } from './random.js';

/** Writes `value` as a little-endian integer of `bytes` (4 or 8) at `at` (two's complement for negatives). */
export function writeInt(buf: Uint8Array, at: number, value: number, bytes: 4 | 8): void {
  if (at < 0 || at + bytes > buf.length) return;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes === 4) view.setUint32(at, value >>> 0, true);
  else view.setBigUint64(at, BigInt.asUintN(64, BigInt(Math.trunc(value))), true);
}

/** `buf` with `remove` bytes at `at` replaced by `insert`. */
function splice(buf: Uint8Array, at0: number, remove0: number, insert: Uint8Array): Uint8Array {
  const at = Math.min(at0, buf.length);
  const remove = Math.min(remove0, buf.length - at);
  const out = new Uint8Array(buf.length - remove + insert.length);
  out.set(buf.subarray(0, at));
  out.set(insert, at);
  out.set(buf.subarray(at + remove), at + insert.length);
  return out;
}

/** One random mutation of `input`; `focus` (a byte range) is where structure lives and is hit most often. */
export function mutateBytes(
  random: Random,
  input: Uint8Array,
  focus: [number, number] = [0, input.length],
): Uint8Array {
  let buf: Uint8Array = new Uint8Array(input);
  const [f0, f1] = [Math.min(focus[0], buf.length), Math.min(focus[1], buf.length)];
  // Positions stay inside the buffer as earlier rounds shrink it.
  const where = (): number =>
    Math.min(
      random.chance(0.8) && f1 > f0 ? f0 + random.int(f1 - f0) : random.int(Math.max(1, buf.length)),
      Math.max(0, buf.length - 1),
    );
  const rounds = 1 + random.int(3);
  for (let r = 0; r < rounds; r++) {
    switch (random.int(9)) {
      case 0:
        if (buf.length) buf[where()] ^= 1 << random.int(8);
        break;
      case 1:
        if (buf.length) buf[where()] = random.pick([0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x7b, 0x7d]);
        break;
      case 2:
        writeInt(buf, where(), random.pick(INTERESTING_INTS), 4);
        break;
      case 3:
        writeInt(buf, where(), random.pick(INTERESTING_INTS) * (random.chance(0.3) ? 2 ** 20 : 1), 8);
        break;
      case 4:
        buf = buf.subarray(0, random.int(buf.length + 1));
        break;
      case 5: {
        const extra = new Uint8Array(1 + random.int(64)).map(() => random.int(256));
        const out = new Uint8Array(buf.length + extra.length);
        out.set(buf);
        out.set(extra, buf.length);
        buf = out;
        break;
      }
      case 6: {
        const a = where();
        const n = random.int(Math.min(64, buf.length - a) + 1);
        buf = splice(buf, a, n, new Uint8Array(0));
        break;
      }
      case 7: {
        const a = where();
        const chunk = buf.slice(a, a + 1 + random.int(32));
        const b = where();
        buf = splice(buf, b, 0, chunk);
        break;
      }
      default: {
        const a = where();
        const b = where();
        const n = Math.min(1 + random.int(16), buf.length - Math.max(a, b));
        if (n > 0) buf.copyWithin(a, b, b + n);
      }
    }
  }
  return buf;
}
