/**
 * Groups the chunk appends a node issues in one turn of its event loop into one script call (docs/redis.md
 * "Appending chunks"). An AI node runs many streams; their tokens arrive in separate I/O callbacks of the same
 * poll phase, and each would otherwise be its own EVALSHA, paying the call's fixed cost in Redis (the request, the
 * script's entry, the reply) and in the node (encoding, a promise, a reply to parse) per token. A batch is sent in
 * the check phase right after (`setImmediate`), so a chunk waits for no timer: at most for the callbacks already
 * queued in the same phase. A batch is cut at `maxBatch` chunks, which bounds how long one call holds Redis.
 */

/**
 * One chunk's key (the attempt's text list) and arguments (the text list's length after it, delta, channel, the
 * channel message): APPEND_CHUNKS's per-chunk KEYS and ARGV.
 */
export interface ChunkCall {
  key: string;
  args: readonly [number, string, string, string];
}

/** What the script did with one chunk: appended it, or refused it with the length its (undone) push made. */
export type ChunkWrite = { appended: true } | { appended: false; length: number };

/** Runs one batch: KEYS and ARGV of every chunk in order; resolves with Redis's reply, unchecked. */
export type RunBatch = (keys: string[], args: (string | number)[]) => Promise<unknown>;

interface Pending {
  call: ChunkCall;
  resolve: (write: ChunkWrite) => void;
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

  /** Queues one chunk; resolves with what the script did with it. */
  append(call: ChunkCall): Promise<ChunkWrite> {
    return new Promise<ChunkWrite>((resolve, reject) => {
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
      keys.push(call.key);
      args.push(...call.args);
    }
    this.runBatch(keys, args).then(
      (reply) => {
        const writes = batchResults(reply, batch.length);
        if (writes instanceof Error) for (const entry of batch) entry.reject(writes);
        else for (const [i, entry] of batch.entries()) entry.resolve(writes[i]!);
      },
      (error: unknown) => {
        for (const entry of batch) entry.reject(error);
      },
    );
  }
}

/**
 * The script's reply checked: 0 when every chunk was appended, else an index (1-based, increasing) and a length
 * for each refused chunk. Anything else fails the whole batch with what came.
 */
export function batchResults(reply: unknown, count: number): ChunkWrite[] | Error {
  const writes: ChunkWrite[] = Array.from({ length: count }, () => APPENDED);
  if (reply === 0) return writes;
  if (!Array.isArray(reply) || reply.length === 0 || reply.length % 2 !== 0 || reply.length > 2 * count) {
    return new Error(`append batch: expected 0 or index/length pairs for ${count} chunks, got ${describe(reply)}`);
  }
  let previous = 0;
  for (let i = 0; i < reply.length; i += 2) {
    const index: unknown = reply[i];
    const length: unknown = reply[i + 1];
    if (typeof index !== "number" || !Number.isInteger(index) || index <= previous || index > count) {
      return new Error(`append batch: refused chunk index ${String(index)} is not in 1..${count} in order`);
    }
    if (typeof length !== "number" || !Number.isInteger(length) || length < 1) {
      return new Error(`append batch: refused chunk ${index} has length ${String(length)}`);
    }
    previous = index;
    writes[index - 1] = { appended: false, length };
  }
  return writes;
}

const APPENDED: ChunkWrite = { appended: true };

const describe = (reply: unknown): string =>
  Array.isArray(reply) ? `an array of ${reply.length}` : reply === null ? "null" : typeof reply;
