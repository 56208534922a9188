// A small seeded generator (mulberry32): every fuzz case is a pure function of (seed, case index), so a
// failure found in a long run is replayed exactly with `npm run fuzz -- --seed S --from I --cases 1`.

export class Random {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  static forCase(seed: number, index: number): Random {
    return new Random(Math.imul(seed + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Integers that break parsers: zero, one, signs, powers of two and their neighbours, the largest. */
export const INTERESTING_INTS = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  16,
  31,
  32,
  63,
  64,
  127,
  128,
  255,
  256,
  1023,
  1024,
  4096,
  65535,
  65536,
  2 ** 24,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  -1,
  -2,
  -128,
  -(2 ** 31),
];

/** Values a JSON field should never be trusted to hold. */
export const INTERESTING_JSON: unknown[] = [
  0,
  -1,
  1,
  1.5,
  -0.5,
  1e9,
  1e300,
  -1e300,
  2 ** 53 + 1,
  'x',
  '',
  '1',
  null,
  true,
  false,
  [],
  [1, 2],
  {},
  { a: 1 },
];
