import { StreamEventSchema } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeChannelMessage } from "./channel-message";
import { ConversationStore } from "./conversations";
import { newId } from "./ids";
import { channels, keys } from "./keys";
import { connectRedis, createRedis } from "./redis";
import { SEQ_SKIP_AFTER_LOSS } from "./scripts";
import { claimResult, type StreamEventInput, StreamStore, type StreamStoreOptions } from "./stream-store";
import { startTestRedis, type TestRedis } from "./test-redis";

let server: TestRedis;
let redis: Redis;
let redis2: Redis;
let sub: Redis;

async function connect(name: string): Promise<Redis> {
  const client = createRedis(server.url, name);
  client.on("error", () => undefined);
  await connectRedis(client, 10_000);
  return client;
}

beforeAll(async () => {
  server = await startTestRedis();
  redis = await connect("test-main");
  redis2 = await connect("test-second");
  sub = await connect("test-sub");
});

afterAll(async () => {
  for (const client of [redis, redis2, sub]) client?.disconnect();
  await server?.stop();
});

/**
 * Subscribes (and waits for Redis to confirm), then returns a function that resolves with the first `count`
 * messages published on `channel` (those `accept` keeps) from the moment of the subscription.
 */
async function collect(
  client: Redis,
  channel: string,
  count: number,
  timeoutMs = 3000,
  accept: (message: string) => boolean = () => true,
): Promise<() => Promise<string[]>> {
  const received: string[] = [];
  let settle: ((messages: string[]) => void) | undefined;
  const onMessage = (ch: string, message: string) => {
    if (ch !== channel || !accept(message)) return;
    received.push(message);
    if (received.length === count) settle?.(received);
  };
  client.on("message", onMessage);
  await client.subscribe(channel);
  return () =>
    new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off("message", onMessage);
        reject(new Error(`got ${received.length} of ${count} messages on ${channel}: ${JSON.stringify(received)}`));
      }, timeoutMs);
      settle = (messages) => {
        clearTimeout(timer);
        client.off("message", onMessage);
        void client.unsubscribe(channel);
        resolve([...messages]);
      };
      if (received.length >= count) settle(received.slice(0, count));
    });
}

function makeStore(options: Partial<StreamStoreOptions> = {}, client: Redis = redis): StreamStore {
  return new StreamStore(client, { leaseMs: 5000, dispatchDeadlineMs: 10_000, ...options });
}

/** A queued stream, as the gateway writes it for a chat request (attempt 1). */
async function queued(store: StreamStore, sessionId = newId("sess")) {
  const turn = await new ConversationStore(redis, store).beginTurn(sessionId, "hello there");
  return { sessionId, streamId: turn.streamId, turn };
}

/** A stream claimed by ai-1 (attempt 1). */
async function running(store: StreamStore, sessionId?: string) {
  const stream = await queued(store, sessionId);
  const claim = await store.claim(stream.streamId, 1, "ai-1");
  expect(claim.status).toBe("claimed");
  return stream;
}

/** Makes the stream's watch deadline due now (what passing time would do). */
async function makeDue(streamId: string): Promise<void> {
  await redis.zadd(keys.watch(), 0, streamId);
}

function startEvent(turn: { conversationId: string; assistantMessageId: string }): StreamEventInput {
  return { kind: "start", conversationId: turn.conversationId, messageId: turn.assistantMessageId, aiNode: "ai-1" };
}

describe("StreamStore.append", () => {
  it("assigns seq 0 to start, then 1, 2, …, and stores exactly the protocol's frames", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    const events: StreamEventInput[] = [
      startEvent(turn),
      // A reset first: the chunks before a reset leave with the old text (a resume from before it gets the reset).
      { kind: "reset" },
      { kind: "chunk", delta: 'He said "hi"\n' },
      { kind: "chunk", delta: "ünïcödé ✓" },
      { kind: "chunk", delta: "again" },
      {
        kind: "done",
        finishReason: "error",
        error: { code: "provider_error", message: "boom" },
        usage: { promptTokens: 3, completionTokens: 4 },
      },
    ];
    const seqs: number[] = [];
    for (const [seq, event] of events.entries()) {
      const outcome = await store.append(streamId, 1, sessionId, seq, event);
      expect(outcome).toEqual({ ok: true, seq });
      if (outcome.ok) seqs.push(outcome.seq);
    }
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5]);

    const stored = await store.readAfter(streamId, -1);
    expect(stored.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    const frames = stored.map((e) => JSON.parse(e.frame) as unknown);
    for (const frame of frames) expect(StreamEventSchema.safeParse(frame).success).toBe(true);
    expect(frames).toEqual([
      {
        type: "start",
        streamId,
        conversationId: turn.conversationId,
        messageId: turn.assistantMessageId,
        seq: 0,
        aiNode: "ai-1",
      },
      { type: "reset", streamId, seq: 1 },
      { type: "chunk", streamId, seq: 2, delta: 'He said "hi"\n' },
      { type: "chunk", streamId, seq: 3, delta: "ünïcödé ✓" },
      { type: "chunk", streamId, seq: 4, delta: "again" },
      {
        type: "done",
        streamId,
        seq: 5,
        finishReason: "error",
        error: { code: "provider_error", message: "boom" },
        usage: { promptTokens: 3, completionTokens: 4 },
      },
    ]);
    // The frame starts with its type: the gateway relies on this to see `done` without parsing.
    expect(stored[5]?.frame.startsWith('{"type":"done"')).toBe(true);

    // readAfter starts right after the given seq and honours the count.
    expect((await store.readAfter(streamId, 2)).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect((await store.readAfter(streamId, 0, 2)).map((e) => e.seq)).toEqual([1, 2]);
    expect(await store.readAfter(streamId, 5)).toEqual([]);

    const meta = await store.meta(streamId);
    expect(meta).toMatchObject({ status: "done", seq: 5, finishReason: "error", attempt: 1, node: "ai-1" });
  });

  it("publishes each event on the session channel; the message decodes to the stored frame", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    const received = await collect(sub, channels.session(sessionId), 3);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "line\nbreak" });
    await store.append(streamId, 1, sessionId, 2, { kind: "done", finishReason: "stop" });
    const messages = (await received()).map(decodeChannelMessage);
    const stored = await store.readAfter(streamId, -1);
    expect(messages).toEqual(stored.map((e) => ({ streamId, seq: e.seq, frame: e.frame })));
    for (const message of messages) expect(StreamEventSchema.safeParse(JSON.parse(message!.frame)).success).toBe(true);
  });

  it("is idempotent: the same seq appended twice is stored, published and appended to the text once", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    const received = await collect(sub, channels.session(sessionId), 3);
    expect(await store.append(streamId, 1, sessionId, 0, startEvent(turn))).toEqual({ ok: true, seq: 0 });
    expect(await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "abc" })).toEqual({
      ok: true,
      seq: 1,
    });
    // The retry of a call whose reply was lost.
    expect(await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "abc" })).toEqual({
      ok: true,
      seq: 1,
    });
    // A marker after the retry: messages arrive in publish order, so the retry's publish would come before it.
    expect(await store.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: "d" })).toEqual({ ok: true, seq: 2 });
    const seqs = (await received()).map((m) => decodeChannelMessage(m)?.seq);
    expect(seqs).toEqual([0, 1, 2]);
    expect((await store.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(await store.snapshot(streamId)).toEqual({ seq: 2, content: "abcd" });
  });

  it("refuses out-of-step seqs, unknown streams and appends after done", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    expect(await store.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: "x" })).toEqual({
      ok: false,
      reason: "out_of_step",
    });
    expect(await store.append(newId("st"), 1, sessionId, 0, startEvent(turn))).toEqual({
      ok: false,
      reason: "unknown",
    });
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "stop" });
    expect(await store.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: "late" })).toEqual({
      ok: false,
      reason: "done",
    });
    expect((await store.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0, 1]);
  });

  it("fences off the old attempt after a takeover", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    expect(await store.takeOver(streamId)).toMatchObject({ status: "takeover", attempt: 2 });
    expect(await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "old" })).toEqual({
      ok: false,
      reason: "fenced",
    });
    // The fence holds for an idempotent-looking retry of an old seq too.
    expect(await store.append(streamId, 1, sessionId, 0, startEvent(turn))).toEqual({ ok: false, reason: "fenced" });
    expect(await store.renew(streamId, 1, "ai-1")).toBe("lost");
    expect((await store.claim(streamId, 2, "ai-2")).status).toBe("claimed");
    expect(await store.append(streamId, 2, sessionId, 1, { kind: "reset" })).toEqual({ ok: true, seq: 1 });
    expect(await store.snapshot(streamId)).toEqual({ seq: 1, content: "" });
  });
});

describe("StreamStore chunks: the attempt's text list is the fence and the seq check", () => {
  /** Attempt 1 wrote start and two chunks on `old`; its lease lapsed and a gateway took the stream over. */
  async function takenOverMidText() {
    const old = makeStore();
    const { streamId, sessionId, turn } = await running(old);
    await old.append(streamId, 1, sessionId, 0, startEvent(turn));
    await old.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "Hel" });
    await old.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: "lo" });
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    expect(await makeStore().takeOver(streamId)).toMatchObject({ status: "takeover", attempt: 2 });
    return { old, streamId, sessionId };
  }

  it("the old attempt's chunks after a takeover are refused one by one and in a batch, and write nothing", async () => {
    const { old, streamId, sessionId } = await takenOverMidText();
    const received = await collect(sub, channels.session(sessionId), 1);
    const refused = await Promise.all(
      [3, 4, 5].map((seq) => old.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: `x${seq}` })),
    );
    expect(refused).toEqual([3, 4, 5].map(() => ({ ok: false, reason: "fenced" })));
    expect(await old.append(streamId, 1, sessionId, 3, { kind: "chunk", delta: "again" })).toEqual({
      ok: false,
      reason: "fenced",
    });
    // Nothing of theirs: no list under attempt 1's name, no history entry, no message (the next one is the new
    // attempt's).
    expect(await redis.exists(keys.streamText(streamId, 1))).toBe(0);
    expect((await old.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0, 1, 2]);
    const next = makeStore();
    const claim = await next.claim(streamId, 2, "ai-2");
    expect(claim).toMatchObject({ status: "claimed", meta: { seq: 2, textSeq: 0 } });
    expect(await next.append(streamId, 2, sessionId, 3, { kind: "chunk", delta: ", world" })).toEqual({
      ok: true,
      seq: 3,
    });
    expect((await received()).map((m) => decodeChannelMessage(m)?.seq)).toEqual([3]);
    expect(await next.snapshot(streamId)).toEqual({ seq: 3, content: "Hello, world" });
  });

  it("a writer whose text list Redis evicted is refused (out_of_step) and writes nothing; the takeover's claim skips past every seq it may have written", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "a" });
    await store.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: "b" });
    await redis.del(keys.streamText(streamId, 1));
    expect(await store.append(streamId, 1, sessionId, 3, { kind: "chunk", delta: "c" })).toEqual({
      ok: false,
      reason: "out_of_step",
    });
    expect(await store.append(streamId, 1, sessionId, 3, { kind: "done", finishReason: "stop" })).toEqual({
      ok: false,
      reason: "out_of_step",
    });
    expect(await redis.exists(keys.streamText(streamId, 1))).toBe(0);
    // The chunks went with the list: the history has the start only (a resume gets a gap, and no snapshot).
    expect((await store.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0]);
    expect(await store.snapshot(streamId)).toBeUndefined();
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    expect(await store.takeOver(streamId)).toMatchObject({ status: "takeover", attempt: 2 });
    const skipped = SEQ_SKIP_AFTER_LOSS;
    expect(await store.claim(streamId, 2, "ai-2")).toMatchObject({
      status: "claimed",
      meta: { seq: skipped, textSeq: -1 },
    });
    // The new attempt starts the text over past every seq a client may have seen; the skip is taken once.
    expect(await store.append(streamId, 2, sessionId, skipped + 1, { kind: "reset" })).toEqual({
      ok: true,
      seq: skipped + 1,
    });
    expect(await store.append(streamId, 2, sessionId, skipped + 2, { kind: "chunk", delta: "new" })).toEqual({
      ok: true,
      seq: skipped + 2,
    });
    expect(await store.snapshot(streamId)).toEqual({ seq: skipped + 2, content: "new" });
    expect((await store.readAfter(streamId, 2)).map((e) => e.seq)).toEqual([skipped + 1, skipped + 2]);
    expect(await store.append(streamId, 2, sessionId, skipped + 3, { kind: "done", finishReason: "stop" })).toEqual({
      ok: true,
      seq: skipped + 3,
    });
  });

  it("a done at an old seq (the meta's, before the chunks) is refused, not answered as written", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "a" });
    expect((await store.meta(streamId))?.seq).toBe(0);
    expect(await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "error" })).toEqual({
      ok: false,
      reason: "out_of_step",
    });
    // The exact last seq is the text's; a done after it ends the stream, and its retry is answered once.
    expect((await store.text(streamId))?.seq).toBe(1);
    const done = { kind: "done", finishReason: "error" } as const;
    expect(await store.append(streamId, 1, sessionId, 2, done)).toEqual({ ok: true, seq: 2 });
    expect(await store.append(streamId, 1, sessionId, 2, done)).toEqual({ ok: true, seq: 2 });
    expect((await store.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0, 1, 2]);
  });

  it("after done no chunk of the writer is taken, whatever its seq, and the text stays readable", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "all" });
    await store.append(streamId, 1, sessionId, 2, { kind: "done", finishReason: "stop" });
    for (const seq of [2, 3, 4]) {
      expect(await store.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: "late" }), `seq ${seq}`).toEqual({
        ok: false,
        reason: "done",
      });
    }
    expect((await store.readAfter(streamId, -1)).map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(await store.snapshot(streamId)).toMatchObject({ seq: 2, content: "all" });
    expect(await redis.pttl(keys.streamTextDone(streamId))).toBeGreaterThan(0);
  });

  it("an answer stored before the text lists (its text a string) is read as it was", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "stop" });
    // What the earlier version left: the text as a string, no list, the meta at done.
    await redis.del(keys.streamTextDone(streamId));
    await redis.set(keys.legacyStreamText(streamId), "an older answer");
    expect(await store.snapshot(streamId)).toMatchObject({ seq: 1, content: "an older answer" });
  });

  it("a store that did not write the list reads where it begins from the meta", async () => {
    const { streamId, sessionId } = await takenOverMidText();
    await makeStore().claim(streamId, 2, "ai-2");
    // Another store than the claim's: it has not seen the list begin.
    expect(await makeStore().append(streamId, 2, sessionId, 3, { kind: "chunk", delta: "!" })).toEqual({
      ok: true,
      seq: 3,
    });
    expect(await makeStore().snapshot(streamId)).toEqual({ seq: 3, content: "Hello!" });
  });
});

describe("StreamStore.claim", () => {
  it("claims once per attempt, refuses stale attempts and unknown streams", async () => {
    const store = makeStore({ leaseMs: 4000 });
    const { streamId } = await queued(store);
    expect(await store.meta(streamId)).toMatchObject({ status: "queued", attempt: 1, seq: -1 });

    // A claim returns the meta as it left it: what the run reads first, without a round trip of its own.
    const claimed = await store.claim(streamId, 1, "ai-1");
    expect(claimed).toEqual({
      status: "claimed",
      cancelRequested: false,
      meta: await store.meta(streamId),
      started: false,
    });
    expect(claimed.status === "claimed" && claimed.meta).toMatchObject({ status: "running", node: "ai-1", seq: -1 });
    expect(await store.claim(streamId, 1, "ai-2")).toEqual({ status: "already_claimed" });
    expect(await store.claim(streamId, 2, "ai-2")).toEqual({ status: "stale_attempt" });
    expect(await store.claim(newId("st"), 1, "ai-1")).toEqual({ status: "unknown" });

    expect(await store.meta(streamId)).toMatchObject({ status: "running", node: "ai-1", attempt: 1 });
    expect(await redis.get(keys.streamLease(streamId))).toBe("ai-1:1");
    const pttl = await redis.pttl(keys.streamLease(streamId));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(4000);

    // After a takeover the old attempt is stale and the new one can be claimed exactly once.
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    expect((await store.takeOver(streamId)).status).toBe("takeover");
    expect(await store.claim(streamId, 1, "ai-1")).toEqual({ status: "stale_attempt" });
    expect(await store.claim(streamId, 2, "ai-2")).toMatchObject({
      status: "claimed",
      cancelRequested: false,
      meta: { attempt: 2, node: "ai-2", status: "running" },
    });
    expect(await store.claim(streamId, 2, "ai-3")).toEqual({ status: "already_claimed" });
  });

  it("a claim of a done stream is stale", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "stop" });
    expect(await store.claim(streamId, 1, "ai-2")).toEqual({ status: "stale_attempt" });
  });
});

describe("StreamStore.claim with the dispatch's ids (the claim writes start)", () => {
  const idsOf = (stream: Awaited<ReturnType<typeof queued>>) => ({
    sessionId: stream.sessionId,
    conversationId: stream.turn.conversationId,
    messageId: stream.turn.assistantMessageId,
    userMessageId: stream.turn.userMessageId,
  });

  it("writes start at seq 0 in the claim: the same frame, history entry, text and channel message as an append", async () => {
    const store = makeStore();
    const stream = await queued(store);
    const messages = await collect(sub, channels.session(stream.sessionId), 1);
    const claimed = await store.claim(stream.streamId, 1, "ai-1", idsOf(stream));
    expect(claimed).toMatchObject({ status: "claimed", started: true, meta: { seq: 0, status: "running" } });
    const [message] = await messages();
    const { frame } = decodeChannelMessage(message!) ?? { frame: "" };
    expect(StreamEventSchema.parse(JSON.parse(frame))).toEqual({
      type: "start",
      streamId: stream.streamId,
      seq: 0,
      conversationId: stream.turn.conversationId,
      messageId: stream.turn.assistantMessageId,
      aiNode: "ai-1",
    });
    expect(await store.readAfter(stream.streamId, -1)).toEqual([{ seq: 0, frame }]);
    expect(await redis.lrange(keys.streamText(stream.streamId, 1), 0, -1)).toEqual([""]);
    expect(await redis.pttl(keys.streamEvents(stream.streamId))).toBeGreaterThan(0);
    // The run goes on at seq 1 as if it had appended start itself.
    expect(await store.append(stream.streamId, 1, stream.sessionId, 1, { kind: "chunk", delta: "Hi" })).toEqual({
      ok: true,
      seq: 1,
    });
  });

  it("ids that are not the stream's claim nothing and write nothing: unknown", async () => {
    const store = makeStore();
    const stream = await queued(store);
    const other = await queued(store);
    for (const wrong of [
      { ...idsOf(stream), sessionId: other.sessionId },
      { ...idsOf(stream), conversationId: other.turn.conversationId },
      { ...idsOf(stream), messageId: other.turn.assistantMessageId },
      { ...idsOf(stream), userMessageId: other.turn.userMessageId },
    ]) {
      expect(await store.claim(stream.streamId, 1, "ai-1", wrong)).toEqual({ status: "unknown" });
    }
    expect(await store.meta(stream.streamId)).toMatchObject({ status: "queued", seq: -1 });
    expect(await redis.exists(keys.streamEvents(stream.streamId), keys.streamLease(stream.streamId))).toBe(0);
  });

  it("a retried dispatch to a second node writes no second start; a takeover's claim writes none", async () => {
    const store = makeStore();
    const stream = await queued(store);
    expect(await store.claim(stream.streamId, 1, "ai-1", idsOf(stream))).toMatchObject({ started: true });
    expect(await store.claim(stream.streamId, 1, "ai-2", idsOf(stream))).toEqual({ status: "already_claimed" });
    await redis.del(keys.streamLease(stream.streamId));
    await makeDue(stream.streamId);
    expect((await store.takeOver(stream.streamId)).status).toBe("takeover");
    expect(await store.claim(stream.streamId, 2, "ai-2", idsOf(stream))).toMatchObject({
      status: "claimed",
      started: false,
      meta: { seq: 0, attempt: 2 },
    });
    expect((await store.readAfter(stream.streamId, -1)).map((event) => event.seq)).toEqual([0]);
  });
});

describe("claimResult (the claim script's reply, checked)", () => {
  it("takes the script's shapes and refuses anything else", () => {
    const meta = ["streamId", "st_a", "sessionId", "sess_a", "status", "running", "attempt", "2", "node", "ai-1"];
    expect(claimResult(["claimed", 1, meta, 0])).toMatchObject({
      status: "claimed",
      cancelRequested: true,
      started: false,
      meta: { streamId: "st_a", sessionId: "sess_a", attempt: 2, node: "ai-1", seq: -1 },
    });
    expect(claimResult(["claimed", 0, [...meta, "seq", "0"], 1])).toMatchObject({ started: true, meta: { seq: 0 } });
    expect(claimResult(["stale_attempt", 0])).toEqual({ status: "stale_attempt" });
    for (const reply of [
      null,
      "claimed",
      ["taken", 0, meta],
      ["claimed", 0],
      ["claimed", 0, meta],
      ["claimed", 0, meta, 2],
      // Started, but the meta is not at the start's seq.
      ["claimed", 0, meta, 1],
      ["claimed", 0, ["streamId"]],
      ["claimed", 0, ["streamId", 1]],
      ["claimed", 2, meta, 0],
      ["claimed", 0, ["status", "running"], 0],
    ]) {
      expect(() => claimResult(reply)).toThrow("claim script returned an unexpected reply");
    }
  });
});

describe("StreamStore.takeOver", () => {
  it("is not_due before the deadline and alive while the lease is held (the deadline moves forward)", async () => {
    const store = makeStore({ leaseMs: 4000 });
    const { streamId } = await running(store);
    expect(await store.takeOver(streamId)).toEqual({ status: "not_due" });

    await makeDue(streamId);
    const before = Date.now();
    expect(await store.takeOver(streamId)).toEqual({ status: "alive" });
    const score = Number(await redis.zscore(keys.watch(), streamId));
    expect(score).toBeGreaterThan(before);
    expect(score).toBeLessThanOrEqual(before + 4000 + 1000);
    expect(await store.meta(streamId)).toMatchObject({ attempt: 1, status: "running" });
    // Still alive: the next check is not due yet.
    expect(await store.takeOver(streamId)).toEqual({ status: "not_due" });
  });

  it("exactly one of many concurrent callers takes a lapsed stream over", async () => {
    const stores = [makeStore({}, redis), makeStore({}, redis2)];
    const { streamId } = await running(stores[0]!);
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    const results = await Promise.all(Array.from({ length: 10 }, (_, index) => stores[index % 2]!.takeOver(streamId)));
    const takeovers = results.filter((r) => r.status === "takeover");
    expect(takeovers).toEqual([{ status: "takeover", attempt: 2, cancelRequested: false, previousNode: "ai-1" }]);
    expect(results.filter((r) => r.status === "not_due")).toHaveLength(9);
    expect(await stores[0]!.meta(streamId)).toMatchObject({ attempt: 2, status: "queued" });
    const score = Number(await redis.zscore(keys.watch(), streamId));
    expect(score).toBeGreaterThan(Date.now() + 5000);
  });

  it("reports gone for unknown and ended streams", async () => {
    const store = makeStore();
    expect(await store.takeOver(newId("st"))).toEqual({ status: "gone" });
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "stop" });
    await makeDue(streamId);
    expect(await store.takeOver(streamId)).toEqual({ status: "gone" });
    expect(await redis.zscore(keys.watch(), streamId)).toBeNull();
  });
});

describe("StreamStore done, snapshot, cancel", () => {
  it("done sets status and finish reason, drops the lease and leaves the watch set", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    expect(await redis.zscore(keys.watch(), streamId)).not.toBeNull();
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "length" });
    expect(await redis.zscore(keys.watch(), streamId)).toBeNull();
    expect(await redis.exists(keys.streamLease(streamId))).toBe(0);
    expect(await store.meta(streamId)).toMatchObject({ status: "done", finishReason: "length", seq: 1 });
    expect(await store.renew(streamId, 1, "ai-1")).toBe("lost");
  });

  it("snapshot is the text since the last reset and its seq", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    expect(await store.snapshot(streamId)).toBeUndefined();
    expect(await store.snapshot(newId("st"))).toBeUndefined();
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    expect(await store.snapshot(streamId)).toEqual({ seq: 0, content: "" });
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "Hello" });
    await store.append(streamId, 1, sessionId, 2, { kind: "chunk", delta: ", world" });
    expect(await store.snapshot(streamId)).toEqual({ seq: 2, content: "Hello, world" });
    await store.append(streamId, 1, sessionId, 3, { kind: "reset" });
    expect(await store.snapshot(streamId)).toEqual({ seq: 3, content: "" });
    await store.append(streamId, 1, sessionId, 4, { kind: "chunk", delta: "Fresh" });
    await store.append(streamId, 1, sessionId, 5, { kind: "done", finishReason: "stop" });
    expect(await store.snapshot(streamId)).toEqual({
      seq: 5,
      content: "Fresh",
      doneFrame: JSON.stringify({ type: "done", streamId, seq: 5, finishReason: "stop" }),
    });
  });

  it("a started stream whose text is gone (evicted) has no snapshot, rather than an empty text at its seq", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "said already" });
    expect(await store.snapshot(streamId)).toEqual({ seq: 1, content: "said already" });
    await redis.del(keys.streamText(streamId, 1));
    expect(await store.snapshot(streamId)).toBeUndefined();
  });

  it("requestCancel: unknown for another session, requested (and published) while running, ended after done", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    expect(await store.requestCancel(streamId, newId("sess"))).toBe("unknown");
    expect(await store.requestCancel(newId("st"), sessionId)).toBe("unknown");
    expect((await store.meta(streamId))?.cancelRequested).toBe(false);

    const received = await collect(sub, channels.cancel(), 1);
    expect(await store.requestCancel(streamId, sessionId)).toBe("requested");
    expect(await received()).toEqual([streamId]);
    expect((await store.meta(streamId))?.cancelRequested).toBe(true);
    expect(await store.renew(streamId, 1, "ai-1")).toBe("cancel_requested");

    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "cancelled" });
    expect(await store.requestCancel(streamId, sessionId)).toBe("ended");
  });

  it("a cancel requested before the claim is reported by the claim", async () => {
    const store = makeStore();
    const { streamId, sessionId } = await queued(store);
    expect(await store.requestCancel(streamId, sessionId)).toBe("requested");
    expect(await store.claim(streamId, 1, "ai-1")).toMatchObject({
      status: "claimed",
      cancelRequested: true,
      meta: { cancelRequested: true },
    });
  });
});

describe("StreamStore history bounds", () => {
  it("chunks (their own script) leave the history's TTL alone: start sets it, done sets it again", async () => {
    const store = makeStore({ historyTtlMs: 60_000 });
    const { streamId, sessionId, turn } = await running(store);
    const eventsKey = keys.streamEvents(streamId);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    // A TTL the test sets, so "untouched" is visible: a chunk that set it would put it back near 60 000.
    await redis.pexpire(eventsKey, 30_000);
    for (let seq = 1; seq <= 5; seq++) {
      expect(await store.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: `c${seq}` })).toEqual({
        ok: true,
        seq,
      });
    }
    const afterChunks = await redis.pttl(eventsKey);
    expect(afterChunks).toBeGreaterThan(29_000);
    expect(afterChunks).toBeLessThanOrEqual(30_000);
    // Retried chunk: idempotent; a stale attempt: fenced; a gap: out of step (the chunk script's own checks).
    expect(await store.append(streamId, 1, sessionId, 5, { kind: "chunk", delta: "c5" })).toEqual({ ok: true, seq: 5 });
    expect(await store.append(streamId, 0, sessionId, 6, { kind: "chunk", delta: "x" })).toEqual({
      ok: false,
      reason: "fenced",
    });
    expect(await store.append(streamId, 1, sessionId, 8, { kind: "chunk", delta: "x" })).toEqual({
      ok: false,
      reason: "out_of_step",
    });
    expect(await store.snapshot(streamId)).toEqual({ seq: 5, content: "c1c2c3c4c5" });
    await store.append(streamId, 1, sessionId, 6, { kind: "done", finishReason: "stop" });
    expect(await redis.pttl(eventsKey)).toBeGreaterThan(59_000);
    expect(await store.append(streamId, 1, sessionId, 7, { kind: "chunk", delta: "late" })).toEqual({
      ok: false,
      reason: "done",
    });
  });

  it("the per-chunk history expires after historyTtlMs while the snapshot survives", async () => {
    const store = makeStore({ historyTtlMs: 200 });
    const { streamId, sessionId, turn } = await running(store);
    const eventsKey = keys.streamEvents(streamId);
    await redis.config("SET", "notify-keyspace-events", "Ex");
    // Redis tells us when the key expired (keyspace notification), so no sleep is needed.
    const expired = await collect(sub, "__keyevent@0__:expired", 1, 5000, (key) => key === eventsKey);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "kept text" });
    const pttl = await redis.pttl(eventsKey);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(200);
    expect(await store.readAfter(streamId, -1)).toHaveLength(2);

    expect(await expired()).toEqual([eventsKey]);
    expect(await redis.exists(eventsKey)).toBe(0);
    expect(await store.readAfter(streamId, -1)).toEqual([]);
    expect(await store.snapshot(streamId)).toEqual({ seq: 1, content: "kept text" });
    // Chunks do not write the meta's seq: the text list says where the stream is.
    expect(await store.meta(streamId)).toMatchObject({ status: "running", seq: 0, textSeq: 0 });
  });

  it("replays at most historyMaxLen events, the newest; the chunks are the text list's, not a second copy", async () => {
    const maxLen = 10;
    const store = makeStore({ historyMaxLen: maxLen });
    const { streamId, sessionId, turn } = await running(store);
    const total = 350;
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    for (let seq = 1; seq < total; seq++) {
      const outcome = await store.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: `x${seq}` });
      expect(outcome.ok).toBe(true);
    }
    // The history's entries are start, reset and done only: the chunks live once, in the text list.
    expect(await redis.xlen(keys.streamEvents(streamId))).toBe(1);
    const kept = await store.readAfter(streamId, -1, 1000);
    expect(kept.map((e) => e.seq)).toEqual(Array.from({ length: maxLen }, (_, i) => total - maxLen + i));
    expect(kept[0]!.frame).toBe(
      `{"type":"chunk","streamId":"${streamId}","seq":${total - maxLen},"delta":"x${total - maxLen}"}`,
    );
    // A resume within the bound gets exactly what follows it; the count pages.
    expect((await store.readAfter(streamId, total - 4)).map((e) => e.seq)).toEqual([total - 3, total - 2, total - 1]);
    expect((await store.readAfter(streamId, total - 6, 2)).map((e) => e.seq)).toEqual([total - 5, total - 4]);
    // The text is not bounded by the replay.
    expect((await store.snapshot(streamId))?.content).toBe(
      Array.from({ length: total - 1 }, (_, i) => `x${i + 1}`).join(""),
    );
  });

  it("a resume across a reset gets the reset and the new text's chunks, and the done after it", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "old" });
    await store.append(streamId, 1, sessionId, 2, { kind: "reset" });
    await store.append(streamId, 1, sessionId, 3, { kind: "chunk", delta: "new" });
    await store.append(streamId, 1, sessionId, 4, { kind: "done", finishReason: "stop" });
    const events = await store.readAfter(streamId, -1);
    // The chunks before the reset left with the old text: the history jumps from start to the reset.
    expect(events.map((e) => e.seq)).toEqual([0, 2, 3, 4]);
    expect(events.map((e) => JSON.parse(e.frame).type)).toEqual(["start", "reset", "chunk", "done"]);
    expect(JSON.parse(events[2]!.frame)).toEqual({ type: "chunk", streamId, seq: 3, delta: "new" });
    expect((await store.readAfter(streamId, 2)).map((e) => e.seq)).toEqual([3, 4]);
    expect(await store.readAfter(streamId, 4)).toEqual([]);
  });

  it("reads a taken-over stream's chunks from the list of the attempt that owns it now", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "a" });
    await redis.del(keys.streamLease(streamId));
    await makeDue(streamId);
    expect(await store.takeOver(streamId)).toMatchObject({ status: "takeover", attempt: 2 });
    expect(await store.claim(streamId, 2, "ai-2")).toMatchObject({ status: "claimed" });
    expect(await store.append(streamId, 2, sessionId, 2, { kind: "chunk", delta: "b" })).toEqual({ ok: true, seq: 2 });
    expect((await store.readAfter(streamId, 0)).map((e) => JSON.parse(e.frame).delta)).toEqual(["a", "b"]);
  });

  it("merges a stream whose chunks are in the history too (written before the list was the history) once per seq", async () => {
    const store = makeStore();
    const { streamId, sessionId, turn } = await running(store);
    await store.append(streamId, 1, sessionId, 0, startEvent(turn));
    await store.append(streamId, 1, sessionId, 1, { kind: "chunk", delta: "a" });
    const legacy = `{"type":"chunk","streamId":"${streamId}","seq":1,"delta":"a"}`;
    await redis.xadd(keys.streamEvents(streamId), "0-2", "f", legacy);
    const events = await store.readAfter(streamId, -1);
    expect(events.map((e) => e.seq)).toEqual([0, 1]);
    expect(events[1]!.frame).toBe(legacy);
  });

  it("refuses a reply that is not READ_AFTER's", async () => {
    const { readAfterResult } = await import("./stream-store");
    expect(readAfterResult([])).toEqual({ entries: [], firstDelta: 0, deltas: [] });
    expect(readAfterResult(["moved", 2])).toBe(2);
    expect(readAfterResult(["events", [["0-1", ["f", "{}"]]], 1, ["a"]])).toEqual({
      entries: [{ seq: 0, frame: "{}" }],
      firstDelta: 1,
      deltas: ["a"],
    });
    expect(() => readAfterResult(["events", [["0-1", ["x", "{}"]]], 1, []])).toThrow(
      "readAfter: a history entry is not `[id, ['f', frame]]`",
    );
    expect(() => readAfterResult(["events", [], "1", []])).toThrow(
      "readAfter: Redis gave a reply that is not READ_AFTER's",
    );
    expect(() => readAfterResult("OK")).toThrow("readAfter: Redis gave a reply that is not READ_AFTER's");
  });
});
