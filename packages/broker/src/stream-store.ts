import { type DispatchStart, type FinishReason, LIMITS, type StreamError, type Usage } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { encodeChannelMessage } from "./channel-message";
import { ChunkBatcher, DEFAULT_MAX_BATCH } from "./chunk-batcher";
import { explainChunkRefusal, RefusalCode } from "./chunk-refusal";
import { chunkFrame, frameParts } from "./frames";
import { channels, keys, seqOfEntryId } from "./keys";
import { LuaScript } from "./redis";
import {
  APPEND_CHUNKS,
  APPEND_EVENT,
  CLAIM_STREAM,
  READ_AFTER,
  READ_TEXT,
  RENEW_LEASE,
  REQUEST_CANCEL,
  TAKE_OVER,
} from "./scripts";
import type { SlotKeys } from "./stream-slots";

export interface StreamStoreOptions {
  /** How long a stream stays replayable after its `start` (or last `reset`), and after its `done`. */
  historyTtlMs: number;
  /** A resume replays at most this many events, the newest (READ_AFTER); the events stream is trimmed to it too. */
  historyMaxLen: number;
  /** How long stream state, text and conversations are kept. */
  retentionTtlMs: number;
  /** How long an AI node's lease on a stream lasts without renewal. */
  leaseMs: number;
  /** How long a queued (not yet claimed) stream may wait before a gateway re-dispatches it. */
  dispatchDeadlineMs: number;
  /** The longest an answer may run, from its request to its `done` (the AI node stops it there: "timeout"). */
  maxDurationMs: number;
  /** At most this many chunks go to Redis in one script call (ChunkBatcher). */
  maxChunkBatch: number;
}

export const defaultStreamStoreOptions: StreamStoreOptions = {
  historyTtlMs: LIMITS.historyTtlMs,
  historyMaxLen: 10_000,
  retentionTtlMs: 30 * 24 * 60 * 60 * 1000,
  leaseMs: 5000,
  dispatchDeadlineMs: 10_000,
  maxDurationMs: 5 * 60 * 1000,
  maxChunkBatch: DEFAULT_MAX_BATCH,
};

export type StreamStatus = "queued" | "running" | "done";

export interface StreamMeta {
  streamId: string;
  sessionId: string;
  conversationId: string;
  messageId: string;
  userMessageId: string;
  status: StreamStatus;
  attempt: number;
  /**
   * The seq of the last `start`, `reset`, `done` or claim, or -1 before `start`; chunks do not write it (their seq
   * is in the text list: `snapshot`). After a claim it is the seq of the stream's last event.
   */
  seq: number;
  /** The seq of the last `start` or `reset`, where the text list begins (-1 before `start`). */
  textSeq: number;
  node?: string;
  finishReason?: FinishReason;
  cancelRequested: boolean;
  createdAt: number;
  /** The concurrency slots the stream holds, freed by its `done` (pass them to `append`). */
  slots?: SlotKeys;
}

export interface NewStream {
  streamId: string;
  sessionId: string;
  conversationId: string;
  messageId: string;
  userMessageId: string;
  /** The concurrency slots it holds (StreamSlots); its `done` frees them. */
  slots?: SlotKeys;
}

export type ClaimResult =
  | {
      status: "claimed";
      cancelRequested: boolean;
      meta: StreamMeta;
      /** The claim wrote the stream's `start` (seq 0, the meta's seq): the run goes on from there. */
      started: boolean;
    }
  | { status: "already_claimed" | "stale_attempt" | "unknown" };
export type RenewResult = "renewed" | "cancel_requested" | "lost";
export type TakeoverResult =
  | { status: "alive" | "gone" | "not_due" }
  | { status: "takeover"; attempt: number; cancelRequested: boolean; previousNode: string };

export type AppendOutcome =
  | { ok: true; seq: number }
  | { ok: false; reason: "fenced" | "unknown" | "done" | "out_of_step" };

export type StreamEventInput =
  | { kind: "start"; conversationId: string; messageId: string; aiNode: string }
  | { kind: "chunk"; delta: string }
  | { kind: "reset"; aiNode?: string }
  | { kind: "done"; finishReason: FinishReason; error?: StreamError; usage?: Usage; aiNode?: string };

/** start, reset and done: the events of APPEND_EVENT (chunks go through the chunk script). */
type NonChunkEvent = Exclude<StreamEventInput, { kind: "chunk" }>;

export interface StreamSnapshot {
  /** The seq of the stream's last event. */
  seq: number;
  /** The text since the last reset, current at `seq`. */
  content: string;
  /** The `done` frame's JSON when the stream has ended (its seq is `seq`). */
  doneFrame?: string;
}

export interface StoredEvent {
  seq: number;
  frame: string;
}

const appendScript = new LuaScript(APPEND_EVENT);
const claimScript = new LuaScript(CLAIM_STREAM);
const renewScript = new LuaScript(RENEW_LEASE);
const takeoverScript = new LuaScript(TAKE_OVER);
const readTextScript = new LuaScript(READ_TEXT);
const readAfterScript = new LuaScript(READ_AFTER);
const chunkScript = new LuaScript(APPEND_CHUNKS);
const cancelScript = new LuaScript(REQUEST_CANCEL);

/**
 * The most streams whose text list's start (textSeq) a store remembers for the chunks it writes; past it the map
 * starts afresh and each stream's next chunk reads it from the meta once. A writer's streams end with `done` (which
 * forgets theirs); the bound only caps runs that died without one.
 */
const TEXT_SEQ_MEMORY_MAX = 100_000;

/** A stream's text, as READ_TEXT gives it (StreamStore.text). */
export interface StreamText {
  status: StreamStatus;
  finishReason?: FinishReason;
  doneFrame?: string;
  /** The seq of the stream's last event (-1 before `start`). */
  seq: number;
  /** The text since the last reset; undefined before `start`, or when Redis evicted it. */
  content?: string;
}

/** Everything about streams in Redis: creation, claim, lease, append + publish, history, takeover, cancel. */
export class StreamStore {
  readonly options: StreamStoreOptions;

  /** Chunks appended in one turn of the event loop, sent as one call of the chunk script (docs/redis.md). */
  private readonly chunks: ChunkBatcher;
  /**
   * `streamId attempt` → the seq its text list begins at, for the chunks this store writes: a chunk sends the list
   * length it makes (APPEND_CHUNKS). Learned from this store's start, reset and claims.
   */
  private readonly textSeqs = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    options: Partial<StreamStoreOptions> = {},
  ) {
    this.options = { ...defaultStreamStoreOptions, ...options };
    this.chunks = new ChunkBatcher(
      (batchKeys, batchArgs) => chunkScript.run<unknown>(this.redis, batchKeys, batchArgs),
      this.options.maxChunkBatch,
    );
  }

  /** Commands that create a queued stream, for the caller's MULTI (the chat request writes messages too). */
  createCommands(stream: NewStream, now: number): [string, ...(string | number)[]][] {
    const meta = keys.streamMeta(stream.streamId);
    return [
      [
        "hset",
        meta,
        "streamId",
        stream.streamId,
        "sessionId",
        stream.sessionId,
        "conversationId",
        stream.conversationId,
        "messageId",
        stream.messageId,
        "userMessageId",
        stream.userMessageId,
        "status",
        "queued",
        "attempt",
        1,
        "createdAt",
        now,
        ...(stream.slots ? ["slotSession", stream.slots.session, "slotAddress", stream.slots.address] : []),
      ],
      ["pexpire", meta, this.options.retentionTtlMs],
      ["zadd", keys.watch(), now + this.options.dispatchDeadlineMs, stream.streamId],
    ];
  }

  /** Undo a stream that no AI node accepted. */
  async delete(streamId: string): Promise<void> {
    await this.redis
      .multi()
      .del(
        keys.streamMeta(streamId),
        keys.streamEvents(streamId),
        // A stream no node accepted never had a takeover: its text list, if any, is attempt 1's.
        keys.streamText(streamId, 1),
        keys.streamLease(streamId),
      )
      .zrem(keys.watch(), streamId)
      .exec();
  }

  /**
   * Claims attempt `attempt` for `node`. With `start` (the ids a stream's first dispatch carries), the claim also
   * writes the stream's `start`, if those are the stream's ids and it never started: one round trip fewer before
   * the first token (docs/redis.md "Claims, leases and takeover").
   */
  async claim(streamId: string, attempt: number, node: string, start?: DispatchStart): Promise<ClaimResult> {
    const claimKeys = [
      keys.streamMeta(streamId),
      keys.streamLease(streamId),
      keys.watch(),
      keys.streamEvents(streamId),
      keys.streamText(streamId, attempt),
    ];
    const claimArgs: (string | number)[] = [attempt, node, this.options.leaseMs, streamId];
    if (start) {
      const { prefix, suffix } = this.encode(streamId, {
        kind: "start",
        conversationId: start.conversationId,
        messageId: start.messageId,
        aiNode: node,
      });
      claimArgs.push(
        start.sessionId,
        start.conversationId,
        start.messageId,
        start.userMessageId,
        `${prefix}0${suffix}`,
        this.options.historyMaxLen,
        this.options.historyTtlMs,
        this.options.retentionTtlMs,
        channels.session(start.sessionId),
      );
    }
    const result = claimResult(await claimScript.run<unknown>(this.redis, claimKeys, claimArgs));
    if (result.status === "claimed" && result.meta.textSeq >= 0) {
      this.rememberTextSeq(textSeqKey(streamId, attempt), result.meta.textSeq);
    }
    return result;
  }

  async renew(streamId: string, attempt: number, node: string): Promise<RenewResult> {
    const result = await renewScript.run<number>(
      this.redis,
      [keys.streamMeta(streamId), keys.streamLease(streamId), keys.watch()],
      [attempt, node, this.options.leaseMs, streamId],
    );
    return result === 2 ? "cancel_requested" : result === 1 ? "renewed" : "lost";
  }

  /** Give a lease back at once (graceful shutdown), so a gateway takes the stream over without waiting. */
  async release(streamId: string, attempt: number): Promise<void> {
    const meta = await this.redis.hget(keys.streamMeta(streamId), "attempt");
    if (Number(meta) !== attempt) return;
    await this.redis.multi().del(keys.streamLease(streamId)).zadd(keys.watch(), 0, streamId).exec();
  }

  /**
   * Appends the event that gets seq `seq` (the previous event's seq + 1; 0 for start). A `done` frees `slots`, the
   * stream's concurrency slots (its meta names them).
   */
  async append(
    streamId: string,
    attempt: number,
    sessionId: string,
    seq: number,
    event: StreamEventInput,
    slots?: SlotKeys,
  ): Promise<AppendOutcome> {
    const result =
      event.kind === "chunk"
        ? await this.appendChunk(streamId, attempt, sessionId, seq, event.delta)
        : await this.appendEvent(streamId, attempt, sessionId, seq, event, slots, this.encode(streamId, event));
    if (result >= 0) {
      // A chunk leaves the memory as it is: only where the list begins is kept, and an ended stream forgotten.
      if (event.kind === "start" || event.kind === "reset") this.rememberTextSeq(textSeqKey(streamId, attempt), result);
      else if (event.kind === "done") this.textSeqs.delete(textSeqKey(streamId, attempt));
      return { ok: true, seq: result };
    }
    this.textSeqs.delete(textSeqKey(streamId, attempt));
    const reason =
      result === RefusalCode.fenced
        ? "fenced"
        : result === RefusalCode.unknown
          ? "unknown"
          : result === RefusalCode.done
            ? "done"
            : "out_of_step";
    return { ok: false, reason };
  }

  private rememberTextSeq(key: string, textSeq: number): void {
    if (this.textSeqs.size >= TEXT_SEQ_MEMORY_MAX && !this.textSeqs.has(key)) this.textSeqs.clear();
    this.textSeqs.set(key, textSeq);
  }

  /** Where the attempt's text list begins, from the meta: for a writer that did not start the list or claim it. */
  private async storedTextSeq(streamId: string, attempt: number): Promise<number> {
    const key = textSeqKey(streamId, attempt);
    const stored = await this.redis.hget(keys.streamMeta(streamId), "textSeq");
    // No list yet (or no stream): any length refuses the chunk, and the script says why.
    if (stored === null || !/^\d+$/.test(stored)) return -1;
    this.rememberTextSeq(key, Number(stored));
    return Number(stored);
  }

  /**
   * A chunk: the hot path (one per token), batched with the other chunks of this turn of the event loop. Where its
   * text list begins is known to the writer that started or claimed it (no await on that path).
   */
  private appendChunk(streamId: string, attempt: number, sessionId: string, seq: number, delta: string) {
    const known = this.textSeqs.get(textSeqKey(streamId, attempt));
    if (known !== undefined) return this.batchChunk(streamId, attempt, sessionId, seq, delta, known);
    return this.storedTextSeq(streamId, attempt).then((textSeq) =>
      this.batchChunk(streamId, attempt, sessionId, seq, delta, textSeq),
    );
  }

  private async batchChunk(
    streamId: string,
    attempt: number,
    sessionId: string,
    seq: number,
    delta: string,
    textSeq: number,
  ): Promise<number> {
    // The list's length after this chunk: its placeholder and one delta per seq from textSeq + 1 to seq.
    const expectedLength = textSeq < 0 ? 0 : seq - textSeq + 1;
    const write = await this.chunks.append({
      key: keys.streamText(streamId, attempt),
      args: [
        expectedLength,
        delta,
        channels.session(sessionId),
        encodeChannelMessage(streamId, seq, chunkFrame(streamId, seq, delta)),
      ],
    });
    if (write.appended) return seq;
    const [status, storedAttempt] = await this.redis.hmget(keys.streamMeta(streamId), "status", "attempt");
    return explainChunkRefusal(
      { status: status ?? null, attempt: storedAttempt ?? null },
      { attempt, seq, expectedLength, length: write.length },
    );
  }

  /** Every event but a chunk: start, reset, done (rare: per stream, not per token). */
  private appendEvent(
    streamId: string,
    attempt: number,
    sessionId: string,
    seq: number,
    event: NonChunkEvent,
    slots: SlotKeys | undefined,
    { prefix, suffix, finishReason }: ReturnType<StreamStore["encode"]>,
  ): Promise<number> {
    return appendScript.run<number>(
      this.redis,
      [
        keys.streamMeta(streamId),
        keys.streamEvents(streamId),
        keys.streamText(streamId, attempt),
        keys.streamLease(streamId),
        keys.watch(),
        keys.streamTextDone(streamId),
        ...(event.kind === "done" && slots ? [slots.session, slots.address] : []),
      ],
      [
        attempt,
        event.kind,
        prefix,
        suffix,
        this.options.historyMaxLen,
        this.options.historyTtlMs,
        channels.session(sessionId),
        finishReason,
        this.options.retentionTtlMs,
        streamId,
        seq,
      ],
    );
  }

  private encode(streamId: string, event: NonChunkEvent) {
    switch (event.kind) {
      case "start":
        return {
          ...frameParts(
            { type: "start", streamId, conversationId: event.conversationId, messageId: event.messageId },
            { aiNode: event.aiNode },
          ),
          finishReason: "",
        };
      case "reset":
        return {
          ...frameParts({ type: "reset", streamId }, event.aiNode ? { aiNode: event.aiNode } : {}),
          finishReason: "",
        };
      case "done": {
        const tail: Record<string, unknown> = { finishReason: event.finishReason };
        if (event.error) tail.error = event.error;
        if (event.usage) tail.usage = event.usage;
        if (event.aiNode) tail.aiNode = event.aiNode;
        return { ...frameParts({ type: "done", streamId }, tail), finishReason: event.finishReason };
      }
    }
  }

  /** Streams whose watch deadline has passed (by this node's clock; the takeover script checks with Redis's). */
  async due(now: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(keys.watch(), "-inf", now, "LIMIT", 0, limit);
  }

  async takeOver(streamId: string): Promise<TakeoverResult> {
    // The script moves the text list from this attempt's name to the next one's: both are passed as keys.
    const current = Number((await this.redis.hget(keys.streamMeta(streamId), "attempt")) ?? 0);
    const [status, attempt, cancel, previousNode] = await takeoverScript.run<[string, number, number, string]>(
      this.redis,
      [
        keys.streamMeta(streamId),
        keys.streamLease(streamId),
        keys.watch(),
        keys.streamText(streamId, current),
        keys.streamText(streamId, current + 1),
      ],
      [streamId, this.options.dispatchDeadlineMs, current],
    );
    if (status === "takeover") return { status, attempt, cancelRequested: cancel === 1, previousNode };
    return { status: status as "alive" | "gone" | "not_due" };
  }

  async requestCancel(streamId: string, sessionId: string): Promise<"unknown" | "ended" | "requested"> {
    return cancelScript.run(this.redis, [keys.streamMeta(streamId)], [sessionId, channels.cancel(), streamId]);
  }

  async meta(streamId: string): Promise<StreamMeta | undefined> {
    const raw = await this.redis.hgetall(keys.streamMeta(streamId));
    return parseMeta(raw);
  }

  /**
   * Events with seq > afterSeq, in order, at most `count` (READ_AFTER): `start`, `reset` and `done` from the
   * history, chunks rebuilt from the text list with the writer's own chunkFrame, so each is the frame the channel
   * carried. The first may be past afterSeq + 1: the history no longer reaches back there (a reset began the text
   * anew, or the resume is more than historyMaxLen events back), and none after it expired.
   */
  async readAfter(streamId: string, afterSeq: number, count = 1000): Promise<StoredEvent[]> {
    return atCurrentAttempt("readAfter", async (attempt) => {
      const reply = await readAfterScript.run<unknown>(
        this.redis,
        [
          keys.streamMeta(streamId),
          keys.streamEvents(streamId),
          keys.streamText(streamId, attempt),
          keys.streamTextDone(streamId),
        ],
        [afterSeq, count, attempt, this.options.historyMaxLen],
      );
      const read = readAfterResult(reply);
      if (typeof read === "number") return read;
      return mergeEvents(read.entries, chunkEvents(streamId, read.firstDelta, read.deltas), count);
    });
  }

  /**
   * The stream's status and text with the seq of its last event, read atomically (READ_TEXT). The text list is
   * named by the attempt: read with attempt 1's (most streams never change hands), and once more with the right
   * one when the stream has moved on. Undefined for an unknown stream.
   */
  async text(streamId: string): Promise<StreamText | undefined> {
    return atCurrentAttempt("text", async (attempt) => {
      const reply = await readTextScript.run<unknown>(
        this.redis,
        [
          keys.streamMeta(streamId),
          keys.streamText(streamId, attempt),
          keys.streamEvents(streamId),
          keys.legacyStreamText(streamId),
          keys.streamTextDone(streamId),
        ],
        [attempt],
      );
      const read = readTextResult(reply);
      return read === "unknown" ? undefined : read;
    });
  }

  /**
   * The text since the last reset and the seq it is current at, read atomically; for an ended stream also its
   * `done` frame (kept beside the history so a resume after expiry still ends with done, error and usage included).
   * Undefined when there is none to give: a stream not started, unknown or expired, and a started one whose text is
   * gone while its meta is not (Redis evicted the text list): an empty text at the stream's seq would replace what
   * a resuming client has with nothing (docs/protocol.md, the snapshot event).
   */
  async snapshot(streamId: string): Promise<StreamSnapshot | undefined> {
    const read = await this.text(streamId);
    if (!read || read.content === undefined || read.seq < 0) return undefined;
    return read.doneFrame
      ? { seq: read.seq, content: read.content, doneFrame: read.doneFrame }
      : { seq: read.seq, content: read.content };
  }
}

/**
 * A read of the text list, which is named by the attempt: with attempt 1's first (most streams never change hands),
 * and again with the attempt `read` answers when the stream has moved on; `what` names the read in the error.
 */
async function atCurrentAttempt<T>(what: string, read: (attempt: number) => Promise<T | number>): Promise<T> {
  let attempt = 1;
  for (let tries = 0; tries < 3; tries++) {
    const result = await read(attempt);
    if (typeof result !== "number") return result;
    attempt = result;
  }
  throw new Error(`${what}: the stream's attempt kept moving while it was read`);
}

const textSeqKey = (streamId: string, attempt: number): string => `${streamId} ${attempt}`;

const STATUSES = new Set<unknown>(["queued", "running", "done"]);

interface ReadAfterReply {
  entries: StoredEvent[];
  firstDelta: number;
  deltas: string[];
}

/** READ_AFTER's reply checked: the attempt to read again with, or the history's entries and the deltas; else throws. */
export function readAfterResult(reply: unknown): ReadAfterReply | number {
  if (Array.isArray(reply) && reply.length === 0) return { entries: [], firstDelta: 0, deltas: [] };
  if (Array.isArray(reply) && reply[0] === "moved" && Number.isSafeInteger(reply[1])) return reply[1] as number;
  if (
    Array.isArray(reply) &&
    reply[0] === "events" &&
    Array.isArray(reply[1]) &&
    Number.isSafeInteger(reply[2]) &&
    Array.isArray(reply[3]) &&
    reply[3].every((d) => typeof d === "string")
  ) {
    const entries = reply[1].map(historyEntry);
    return { entries, firstDelta: reply[2] as number, deltas: reply[3] as string[] };
  }
  throw new Error("readAfter: Redis gave a reply that is not READ_AFTER's");
}

/** One XRANGE entry, `[id, ['f', frame]]`, as an event; throws on anything else. */
function historyEntry(entry: unknown): StoredEvent {
  if (
    Array.isArray(entry) &&
    typeof entry[0] === "string" &&
    Array.isArray(entry[1]) &&
    entry[1][0] === "f" &&
    typeof entry[1][1] === "string"
  ) {
    return { seq: seqOfEntryId(entry[0]), frame: entry[1][1] };
  }
  throw new Error("readAfter: a history entry is not `[id, ['f', frame]]`");
}

/** The text list's deltas as the chunk events they were: the delta at `first + i` is the chunk of that seq. */
export function chunkEvents(streamId: string, first: number, deltas: readonly string[]): StoredEvent[] {
  return deltas.map((delta, i) => ({ seq: first + i, frame: chunkFrame(streamId, first + i, delta) }));
}

/**
 * Two runs of events, each in seq order, as one in seq order, at most `count`. A seq in both is taken once, from
 * the history: streams written before chunks left the history have their chunks in both.
 */
export function mergeEvents(history: StoredEvent[], chunks: StoredEvent[], count: number): StoredEvent[] {
  const merged: StoredEvent[] = [];
  let h = 0;
  let c = 0;
  while (merged.length < count && (h < history.length || c < chunks.length)) {
    const fromHistory = history[h];
    const fromChunks = chunks[c];
    if (fromChunks === undefined || (fromHistory !== undefined && fromHistory.seq <= fromChunks.seq)) {
      if (fromChunks?.seq === fromHistory!.seq) c++;
      merged.push(fromHistory!);
      h++;
    } else {
      merged.push(fromChunks);
      c++;
    }
  }
  return merged;
}

/** READ_TEXT's reply checked: "unknown", the attempt to read again with, or the stream's text; else it throws. */
export function readTextResult(reply: unknown): StreamText | number | "unknown" {
  if (Array.isArray(reply) && reply.length === 0) return "unknown";
  if (Array.isArray(reply) && reply[0] === "moved" && Number.isSafeInteger(reply[1])) return reply[1] as number;
  if (!Array.isArray(reply) || reply[0] !== "text" || reply.length !== 6) {
    throw new Error("read text script returned an unexpected reply");
  }
  const [, status, finishReason, doneFrame, seq, content] = reply as unknown[];
  if (
    !STATUSES.has(status) ||
    typeof finishReason !== "string" ||
    typeof doneFrame !== "string" ||
    !Number.isSafeInteger(seq) ||
    (seq as number) < -1 ||
    !(content === null || typeof content === "string")
  ) {
    throw new Error("read text script returned an unexpected reply");
  }
  return {
    status: status as StreamStatus,
    seq: seq as number,
    ...(finishReason ? { finishReason: finishReason as FinishReason } : {}),
    ...(doneFrame ? { doneFrame } : {}),
    ...(typeof content === "string" ? { content } : {}),
  };
}

const CLAIM_STATUSES = new Set<unknown>(["claimed", "already_claimed", "stale_attempt", "unknown"]);

const isFlag = (value: unknown): value is 0 | 1 => value === 0 || value === 1;

/**
 * CLAIM_STREAM's reply checked: a status, and for a claim the cancel flag, a well-formed meta and the started flag
 * (a started stream's meta is at seq 0); else it throws.
 */
export function claimResult(reply: unknown): ClaimResult {
  if (!Array.isArray(reply) || !CLAIM_STATUSES.has(reply[0]))
    throw new Error("claim script returned an unexpected reply");
  const status = reply[0] as ClaimResult["status"];
  if (status !== "claimed") return { status };
  const meta = isFieldList(reply[2]) ? parseMeta(fieldRecord(reply[2])) : undefined;
  if (!meta || !isFlag(reply[1]) || !isFlag(reply[3]) || (reply[3] === 1 && meta.seq !== 0))
    throw new Error("claim script returned an unexpected reply");
  return { status, cancelRequested: reply[1] === 1, meta, started: reply[3] === 1 };
}

/** An HGETALL reply inside a script's reply: field, value, field, value … */
const isFieldList = (value: unknown): value is string[] =>
  Array.isArray(value) && value.length % 2 === 0 && value.every((item) => typeof item === "string");

function fieldRecord(list: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) record[list[i]!] = list[i + 1]!;
  return record;
}

export function parseMeta(raw: Record<string, string>): StreamMeta | undefined {
  if (!raw.streamId || !raw.sessionId) return undefined;
  return {
    streamId: raw.streamId,
    sessionId: raw.sessionId,
    conversationId: raw.conversationId ?? "",
    messageId: raw.messageId ?? "",
    userMessageId: raw.userMessageId ?? "",
    status: (raw.status as StreamStatus) ?? "queued",
    attempt: Number(raw.attempt ?? 1),
    seq: raw.seq === undefined ? -1 : Number(raw.seq),
    textSeq: raw.textSeq === undefined ? -1 : Number(raw.textSeq),
    node: raw.node,
    finishReason: raw.finishReason as FinishReason | undefined,
    cancelRequested: raw.cancel === "1",
    createdAt: Number(raw.createdAt ?? 0),
    ...(raw.slotSession && raw.slotAddress ? { slots: { session: raw.slotSession, address: raw.slotAddress } } : {}),
  };
}
