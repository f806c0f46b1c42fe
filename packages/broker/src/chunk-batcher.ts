/**
 * Groups the chunk appends a node issues in one turn of its event loop into one script call (docs/redis.md
 * "Appending chunks"). An AI node runs many streams; their tokens arrive in separate I/O callbacks of the same
 * poll phase, and each would otherwise be its own EVALSHA, paying the call's fixed cost in Redis (the request, the
 * script's entry, the reply) and in the node (encoding, a promise, a reply to parse) per token. A batch is sent in
 * the check phase right after (`setImmediate`), so a chunk waits for no timer: at most for the callbacks already
 * queued in the same phase. A batch is cut at `maxBatch` chunks, which bounds how long one call holds Redis.
 */

/**
 * One chunk's keys (the attempt's text list, meta) and arguments (attempt, seq, the text list's length after it,
 * delta, channel, the channel message): APPEND_CHUNKS's per-chunk KEYS and ARGV.
 */
export interface ChunkCall {
  keys: readonly [string, string];
  args: readonly [number, number, number, string, string, string];
}

/** Runs one batch: KEYS and ARGV of every chunk in order; resolves with Redis's reply, unchecked. */
export type RunBatch = (keys: string[], args: (string | number)[]) => Promise<unknown>;

interface Pending {
  call: ChunkCall;
  resolve: (result: number) => void;
  reject: (error: unknown) => void;
}

/** The most chunks per call by default: ~64 × 7 µs of Redis time, well under a millisecond per call. */
export const DEFAULT_MAX_BATCH = 64;

export class ChunkBatcher {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly runBatch: RunBatch,
    private readonly maxBatch = DEFAULT_MAX_BATCH,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new Error(`ChunkBatcher: maxBatch must be a positive whole number, got ${maxBatch}`);
    }
  }

  /** Queues one chunk; resolves with the script's result for it (the seq, or a negative refusal code). */
  append(call: ChunkCall): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ call, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const keys: string[] = [];
    const args: (string | number)[] = [];
    for (const { call } of batch) {
      keys.push(...call.keys);
      args.push(...call.args);
    }
    this.runBatch(keys, args).then(
      (reply) => {
        const results = batchResults(reply, batch.length);
        if (results instanceof Error) for (const entry of batch) entry.reject(results);
        else for (const [i, entry] of batch.entries()) entry.resolve(results[i]!);
      },
      (error: unknown) => {
        for (const entry of batch) entry.reject(error);
      },
    );
  }
}

/** The script's reply checked: one whole number per chunk, or an Error saying what came instead. */
export function batchResults(reply: unknown, expected: number): number[] | Error {
  if (!Array.isArray(reply) || reply.length !== expected || !reply.every((r) => Number.isInteger(r))) {
    return new Error(`append batch: expected ${expected} whole numbers from Redis, got ${describe(reply)}`);
  }
  return reply as number[];
}

const describe = (reply: unknown): string =>
  Array.isArray(reply) ? `an array of ${reply.length}` : reply === null ? "null" : typeof reply;
