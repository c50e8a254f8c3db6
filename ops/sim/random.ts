/**
 * The simulator's only source of randomness: a small seeded PRNG (mulberry32) with the helpers a
 * scenario needs. Every choice a scenario makes is drawn from one of these, so a seed replays the
 * same schedule. `fork(label)` gives an independent stream (e.g. one per proxy) whose draws do not
 * shift the main schedule when that component asks for more or fewer numbers.
 */
export type Random = {
  readonly seed: number;
  /** A float in [0, 1). */
  next: () => number;
  /** An integer in [lo, hi] (inclusive). */
  int: (lo: number, hi: number) => number;
  /** A bigint in [lo, hi] (inclusive); for amounts. */
  bigint: (lo: bigint, hi: bigint) => bigint;
  /** True with probability p. */
  chance: (p: number) => boolean;
  pick: <T>(items: readonly T[]) => T;
  /** One of the keys, with probability proportional to its weight. */
  weighted: <K extends string>(weights: Readonly<Record<K, number>>) => K;
  /** An independent stream derived from this seed and a label. */
  fork: (label: string) => Random;
};

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, for deriving fork seeds from labels. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function createRandom(seed: number): Random {
  const next = mulberry32(seed ^ 0x9e3779b9);
  const int = (lo: number, hi: number) => {
    if (hi < lo) throw new RangeError(`int(${lo}, ${hi}): empty range`);
    return lo + Math.floor(next() * (hi - lo + 1));
  };
  const random: Random = {
    seed,
    next,
    int,
    bigint(lo, hi) {
      if (hi < lo) throw new RangeError(`bigint(${lo}, ${hi}): empty range`);
      const span = hi - lo + 1n;
      // Two 32-bit draws cover every amount a scenario uses (< 2^64); modulo bias is irrelevant here.
      const r =
        (BigInt(Math.floor(next() * 2 ** 32)) << 32n) | BigInt(Math.floor(next() * 2 ** 32));
      return lo + (r % span);
    },
    chance: (p) => next() < p,
    pick(items) {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[int(0, items.length - 1)] as (typeof items)[number];
    },
    weighted(weights) {
      const entries = Object.entries(weights) as [keyof typeof weights, number][];
      const total = entries.reduce((s, [, w]) => s + w, 0);
      let r = next() * total;
      for (const [key, w] of entries) {
        r -= w;
        if (r < 0) return key;
      }
      return (entries.at(-1) as [keyof typeof weights, number])[0];
    },
    fork: (label) => createRandom((hash32(label) ^ Math.imul(seed, 0x85ebca6b)) >>> 0),
  };
  return random;
}
