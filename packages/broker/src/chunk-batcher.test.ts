import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchResults, ChunkBatcher } from "./chunk-batcher";
import { ConversationStore } from "./conversations";
import { newId } from "./ids";
import { keys } from "./keys";
import { connectRedis, createRedis } from "./redis";
import { StreamStore } from "./stream-store";
import { startTestRedis, type TestRedis } from "./test-redis";

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "test-batcher");
  redis.on("error", () => undefined);
  await connectRedis(redis, 10_000);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** A stream claimed by ai-1 with its `start` (seq 0) written. */
async function started(store: StreamStore) {
  const sessionId = newId("sess");
  const turn = await new ConversationStore(redis, store).beginTurn(sessionId, "hello there");
  expect((await store.claim(turn.streamId, 1, "ai-1")).status).toBe("claimed");
  const start = { kind: "start" as const, conversationId: turn.conversationId, messageId: "m", aiNode: "ai-1" };
  expect(await store.append(turn.streamId, 1, sessionId, 0, start)).toEqual({ ok: true, seq: 0 });
  return { streamId: turn.streamId, sessionId };
}

/** How many times Redis ran a script by EVALSHA since the last reset of its statistics. */
async function evalshaCalls(): Promise<number> {
  const info = await redis.info("commandstats");
  const match = /cmdstat_evalsha:calls=(\d+)/.exec(info);
  return match ? Number(match[1]) : 0;
}

describe("chunk appends in one turn of the event loop", () => {
  it("go to Redis as one script call per turn, each chunk checked on its own", async () => {
    const store = new StreamStore(redis);
    const streams = await Promise.all(Array.from({ length: 5 }, () => started(store)));
    await redis.config("RESETSTAT");
    // Five streams' next chunks, a fenced chunk (attempt 2), an unknown stream and an out-of-step seq, all at once.
    const outcomes = await Promise.all([
      ...streams.map((s, i) => store.append(s.streamId, 1, s.sessionId, 1, { kind: "chunk", delta: `d${i}` })),
      store.append(streams[0]!.streamId, 2, streams[0]!.sessionId, 2, { kind: "chunk", delta: "x" }),
      store.append(newId("st"), 1, streams[0]!.sessionId, 1, { kind: "chunk", delta: "x" }),
      store.append(streams[1]!.streamId, 1, streams[1]!.sessionId, 5, { kind: "chunk", delta: "x" }),
    ]);
    expect(outcomes).toEqual([
      ...streams.map(() => ({ ok: true, seq: 1 })),
      { ok: false, reason: "fenced" },
      { ok: false, reason: "unknown" },
      { ok: false, reason: "out_of_step" },
    ]);
    // The fenced and the unknown stream's chunks go a turn later: this store never wrote their text lists, so it
    // reads where they begin from the meta first (there is none: they are refused, and the script says why).
    expect(await evalshaCalls()).toBe(2);
    for (const [i, s] of streams.entries()) {
      expect((await store.snapshot(s.streamId))?.content).toBe(`d${i}`);
      expect((await store.readAfter(s.streamId, 0)).map((e) => e.seq)).toEqual([1]);
    }
  });

  it("keep a stream's chunks in their order within one call, and a retried chunk is appended once", async () => {
    const store = new StreamStore(redis);
    const { streamId, sessionId } = await started(store);
    await redis.config("RESETSTAT");
    const outcomes = await Promise.all(
      [1, 2, 2, 3].map((seq) => store.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: `${seq}` })),
    );
    expect(outcomes.map((o) => o.ok && o.seq)).toEqual([1, 2, 2, 3]);
    expect(await evalshaCalls()).toBe(1);
    expect((await store.snapshot(streamId))?.content).toBe("123");
    expect((await store.readAfter(streamId, 0)).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it("are cut into calls of at most maxChunkBatch chunks", async () => {
    const store = new StreamStore(redis, { maxChunkBatch: 4 });
    const streams = await Promise.all(Array.from({ length: 10 }, () => started(store)));
    await redis.config("RESETSTAT");
    const outcomes = await Promise.all(
      streams.map((s) => store.append(s.streamId, 1, s.sessionId, 1, { kind: "chunk", delta: "t" })),
    );
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(await evalshaCalls()).toBe(3); // 4 + 4 + 2
  });

  it("all fail with Redis's error when the call fails, and the next batch goes on", async () => {
    const store = new StreamStore(redis);
    const { streamId, sessionId } = await started(store);
    const failing = new ChunkBatcher(async () => {
      throw new Error("Connection is closed.");
    });
    const call = { key: keys.streamText(streamId, 1), args: [2, "x", "ch", `${streamId}\n1\n{}`] } as const;
    const results = await Promise.allSettled([failing.append(call), failing.append(call)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "y" })).toEqual({ ok: true, seq: 1 });
  });

  it("read 0 as every chunk appended, and index/length pairs as the refused ones", () => {
    const appended = { appended: true };
    expect(batchResults(0, 3)).toEqual([appended, appended, appended]);
    expect(batchResults([1, 1, 3, 7], 3)).toEqual([
      { appended: false, length: 1 },
      appended,
      { appended: false, length: 7 },
    ]);
  });

  it("refuse any other reply, naming what came", async () => {
    const shape = (got: string) => new Error(`append batch: expected 0 or index/length pairs for 2 chunks, got ${got}`);
    expect(batchResults(null, 2)).toEqual(shape("null"));
    expect(batchResults(7, 2)).toEqual(shape("number"));
    expect(batchResults("OK", 2)).toEqual(shape("string"));
    expect(batchResults([], 2)).toEqual(shape("an array of 0"));
    expect(batchResults([1], 2)).toEqual(shape("an array of 1"));
    expect(batchResults([1, 1, 2, 1, 2, 1], 2)).toEqual(shape("an array of 6"));
    expect(batchResults([3, 1], 2)).toEqual(new Error("append batch: refused chunk index 3 is not in 1..2 in order"));
    expect(batchResults([2, 1, 1, 1], 2)).toEqual(
      new Error("append batch: refused chunk index 1 is not in 1..2 in order"),
    );
    expect(batchResults(["1", 1], 2)).toEqual(new Error("append batch: refused chunk index 1 is not in 1..2 in order"));
    expect(batchResults([1, 0], 2)).toEqual(new Error("append batch: refused chunk 1 has length 0"));
    expect(batchResults([1, "2"], 2)).toEqual(new Error("append batch: refused chunk 1 has length 2"));
    const bad = new ChunkBatcher(async () => "OK");
    const call = { key: "a", args: [2, "x", "ch", "s\n1\n{}"] } as const;
    await expect(bad.append(call)).rejects.toThrow(
      "append batch: expected 0 or index/length pairs for 1 chunks, got string",
    );
  });

  it("refuse a batch size that is not a positive whole number", () => {
    expect(() => new ChunkBatcher(async () => [], 0)).toThrow(
      "ChunkBatcher: maxBatch must be a positive whole number, got 0",
    );
    expect(() => new StreamStore(redis, { maxChunkBatch: 1.5 })).toThrow(
      "ChunkBatcher: maxBatch must be a positive whole number, got 1.5",
    );
  });
});
