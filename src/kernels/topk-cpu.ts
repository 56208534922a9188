// Top-k selection by radix select (no sort of all scores), the CPU twin of kernels/topk-wgsl.ts.
// Each key gets a 64-bit composite (order-preserving u32 of its f32 score, then ~index, so ties go to the
// lower index and all composites differ). Passes over the keys histogram the next 8 bits of the keys that
// share the prefix chosen so far; the bucket holding the k-th largest extends the prefix. Once that bucket
// holds at most TOPK_CANDIDATES keys, one collect pass takes every key above the prefix and gathers the
// bucket's keys as candidates, ranked exactly. (Radix select as in Alabi et al., "Fast k-selection
// algorithms for graphics processing units", 2012; the candidate spill is ours.)

/** Boundary-bucket size at which a collect pass can finish the selection. */
export const TOPK_CANDIDATES = 256;
/** Histogram passes at most (8 bits each over the 64-bit composite), plus one collect pass. */
export const TOPK_MAX_PASSES = 9;
/** With a sample pass: sample, a guess that fails, then the passes above. */
export const TOPK_MAX_PASSES_SAMPLED = TOPK_MAX_PASSES + 2;

/**
 * Sampled first digit. The first 8 bits of the composite are the sign and 7 exponent bits, which barely vary,
 * so the first full pass resolves little and a long row needs 3 full passes (2 histograms and collect). A
 * sample pass over every `stride`-th key (1/stride of a pass) guesses that first digit from the k/stride-th
 * sampled key; the first full pass then histograms the next 8 bits of the guessed bucket and counts the keys
 * above it. If the k-th key lies in the guessed bucket (almost always) the row is at 16 bits after one full
 * pass, usually collectable: 2 full passes. Otherwise it restarts from bit 0 (one pass lost).
 * stride = min(16, width / 64) (64 sampled keys above the threshold at least); rows with fewer than
 * SAMPLE_MIN_RATIO x take visible keys (or stride < 2) are not sampled.
 */
export function sampleStride(width: number): number {
  const stride = Math.min(16, Math.floor(width / 64));
  return stride >= 2 ? stride : 0;
}
export const SAMPLE_MIN_RATIO = 4;

/** Whether a row of `count` keys taking `take` is sampled first. */
export function rowSampled(stride: number, count: number, take: number): boolean {
  return stride >= 2 && take < count && count >= SAMPLE_MIN_RATIO * take;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Order-preserving map of an f32 to a u32 (larger float -> larger u32); -0 counts as +0, and NaN ranks above
 * every number (its key is selected, so the attention sees the NaN: docs/HARDENING.md). */
export function orderedKey(score: number): number {
  if (Number.isNaN(score)) return 0xffffffff;
  f32[0] = score === 0 ? 0 : score;
  const b = u32[0];
  return b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

/** Selection state of one query: the composite prefix chosen so far and how many keys must still come from it. */
interface Prefix {
  bits: number; // 0, 8, ..., 64
  hi: number;
  lo: number;
  need: number;
}

/** Compares the top `bits` bits of composite (hi, lo) with the prefix: -1, 0 or 1. */
export function comparePrefix(hi: number, lo: number, p: { bits: number; hi: number; lo: number }): number {
  if (p.bits === 0) return 0;
  if (p.bits <= 32) {
    const x = hi >>> (32 - p.bits);
    return x === p.hi ? 0 : x > p.hi ? 1 : -1;
  }
  if (hi !== p.hi) return hi > p.hi ? 1 : -1;
  const y = p.bits === 64 ? lo : lo >>> (64 - p.bits);
  return y === p.lo ? 0 : y > p.lo ? 1 : -1;
}

/** The 8-bit digit after the prefix. */
export function nextDigit(hi: number, lo: number, bits: number): number {
  return bits < 32 ? (hi >>> (24 - bits)) & 255 : (lo >>> (56 - bits)) & 255;
}

export interface SelectStats {
  /** Passes over the keys, collect included (each recomputes the scores on the GPU). */
  passes: number;
}

/**
 * Writes the indices of the top min(k, count) of scores[0..count) into out[offset..], highest first for
 * the keys above the final prefix (in index order), then the boundary keys by rank; pads to `width` with -1.
 */
export function radixSelectRow(
  scores: Float32Array,
  count: number,
  k: number,
  out: Int32Array,
  offset: number,
  width: number,
  stride = 0,
): SelectStats {
  const take = Math.min(k, count);
  out.fill(-1, offset, offset + width);
  if (take === 0) return { passes: 0 };
  const keyHi = new Uint32Array(count);
  for (let s = 0; s < count; s++) keyHi[s] = orderedKey(scores[s]);
  const lo = (s: number) => (0xffffffff - s) >>> 0;
  let n = 0;
  if (take === count) {
    for (let s = 0; s < count; s++) out[offset + n++] = s;
    return { passes: 1 };
  }
  const p: Prefix = { bits: 0, hi: 0, lo: 0, need: take };
  const hist = new Uint32Array(256);
  let passes = 0;
  let guessed = false;
  if (rowSampled(stride, count, take)) {
    // Sample pass (counted as a pass, though it costs 1/stride), then the guessed bucket's pass.
    passes += 2;
    for (let s = 0; s < count; s += stride) hist[nextDigit(keyHi[s], lo(s), 0)]++;
    const needSample = Math.ceil(take / stride);
    let d = 255;
    for (let above = 0; d > 0 && above + hist[d] < needSample; d--) above += hist[d];
    const guess = { bits: 8, hi: d, lo: 0 };
    hist.fill(0);
    let above = 0;
    for (let s = 0; s < count; s++) {
      const c = comparePrefix(keyHi[s], lo(s), guess);
      if (c > 0) above++;
      else if (c === 0) hist[nextDigit(keyHi[s], lo(s), 8)]++;
    }
    const total = hist.reduce((a, b) => a + b, 0);
    if (above < take && above + total >= take) {
      guessed = true;
      p.bits = 8;
      p.hi = d;
      p.need = take - above;
    }
  }
  for (;;) {
    if (guessed) {
      guessed = false; // the guess pass's histogram is this round's
    } else {
      hist.fill(0);
      passes++;
      for (let s = 0; s < count; s++)
        if (comparePrefix(keyHi[s], lo(s), p) === 0) hist[nextDigit(keyHi[s], lo(s), p.bits)]++;
    }
    let above = 0;
    let d = 255;
    while (above + hist[d] < p.need) above += hist[d--];
    p.need -= above;
    if (p.bits < 32) p.hi = ((p.hi << 8) | d) >>> 0;
    else p.lo = ((p.lo << 8) | d) >>> 0;
    p.bits += 8;
    if (hist[d] <= TOPK_CANDIDATES || p.bits === 64) break;
  }
  // Collect: keys above the prefix are all in; the prefix's own keys are candidates, ranked exactly.
  passes++;
  const cand: number[] = [];
  for (let s = 0; s < count; s++) {
    const c = comparePrefix(keyHi[s], lo(s), p);
    if (c > 0) out[offset + n++] = s;
    else if (c === 0) cand.push(s);
  }
  const before = (a: number, b: number) => keyHi[a] > keyHi[b] || (keyHi[a] === keyHi[b] && a < b);
  for (const a of cand) {
    let rank = 0;
    for (const b of cand) if (before(b, a)) rank++;
    if (rank < p.need) out[offset + n + rank] = a;
  }
  return { passes };
}
