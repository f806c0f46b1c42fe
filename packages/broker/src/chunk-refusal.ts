/**
 * Why the chunk script refused a chunk (docs/redis.md "The text list"). The script only pushes, checks the length
 * and undoes a push that does not fit; the reason is read afterwards, from the stream's meta, off the hot path: a
 * refusal happens once per writer at most (a fenced or evicted run stops), so reading the meta there costs nothing
 * per token, where passing the attempt, the seq and the meta's name to every chunk did (docs/benchmarks.md
 * "Changes, before and after", 16).
 */

/** The meta's fields a refusal is explained from (HMGET meta status attempt). */
export interface RefusedChunkMeta {
  status: string | null;
  attempt: string | null;
}

/** The refused chunk, as its writer sent it, and the length its undone push made. */
export interface RefusedChunk {
  attempt: number;
  seq: number;
  /** The text list's length the chunk had to make. */
  expectedLength: number;
  /** The length it made instead (the push is undone). */
  length: number;
}

/** Refusal codes, as APPEND_EVENT returns them and StreamStore.append names them. */
export const RefusalCode = { fenced: -1, unknown: -2, done: -3, outOfStep: -4 } as const;

/**
 * The seq when the chunk is there already (one past the expected length: a retried call whose first try ran and
 * whose reply was lost), else the refusal's code: the stream is gone, another attempt owns it, it is done, or the
 * writer is out of step with its list (evicted, or behind a Redis that lost its last writes).
 */
export function explainChunkRefusal(meta: RefusedChunkMeta, chunk: RefusedChunk): number {
  if (meta.status === null) return RefusalCode.unknown;
  if (Number(meta.attempt) !== chunk.attempt) return RefusalCode.fenced;
  if (chunk.length === chunk.expectedLength + 1) return chunk.seq;
  if (meta.status === "done") return RefusalCode.done;
  return RefusalCode.outOfStep;
}
