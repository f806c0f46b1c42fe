/**
 * Clock, latency histogram and summaries shared by the benchmark's processes (docs/benchmarks.md, "Method").
 */

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime), with sub-microsecond precision. The clock is the machine's, not
 * the process's: a publisher's stamp and a client's arrival time in another process compare directly.
 */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Waits until nowMs() reaches `at`. */
export const sleepUntil = (at: number): Promise<void> => sleep(at - nowMs());

/** 10 µs buckets up to 100 ms, then 1 ms buckets up to 60 s, then one overflow bucket. */
const FINE_BUCKETS = 10_000;
const FINE_MS = 0.01;
const COARSE_BUCKETS = 59_900;
const BUCKETS = FINE_BUCKETS + COARSE_BUCKETS + 1;

/** Sparse form of a histogram for IPC and JSON: [bucket, count] pairs. */
export type SparseHistogram = [number, number][];

/**
 * A latency histogram with 10 µs resolution below 100 ms (1 ms above), mergeable across processes; the maximum is
 * kept exactly. Percentiles are the upper edge of the bucket that holds the rank (never optimistic).
 */
export class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  max = 0;

  add(ms: number): void {
    const value = Number.isNaN(ms) ? 0 : Math.max(ms, 0);
    const bucket =
      value < 100 ? Math.floor(value / FINE_MS) : Math.min(BUCKETS - 1, FINE_BUCKETS + Math.floor(value - 100));
    this.counts[bucket]!++;
    this.count++;
    if (value > this.max) this.max = value;
  }

  toSparse(): SparseHistogram {
    const out: SparseHistogram = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) out.push([i, this.counts[i]!]);
    return out;
  }

  merge(sparse: SparseHistogram, max: number): void {
    for (const [bucket, count] of sparse) {
      this.counts[bucket]! += count;
      this.count += count;
    }
    if (max > this.max) this.max = max;
  }

  /** The latency (ms) at or below which `p` percent of the samples are; NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const edge = i < FINE_BUCKETS ? (i + 1) * FINE_MS : 100 + (i - FINE_BUCKETS + 1);
        return Math.min(edge, this.max);
      }
    }
    return this.max;
  }
}

/** The median of the repeats and their range. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mid = Math.floor(finite.length / 2);
  const median = finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
  return { median, min: finite[0]!, max: finite.at(-1)! };
}

/** Rounds to `digits` significant-looking decimals for JSON and tables (keeps files small and diffs readable). */
export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
