import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationStore } from "./conversations";
import { newId } from "./ids";
import { keys } from "./keys";
import { RateLimiter } from "./rate-limiter";
import { StreamSlots } from "./stream-slots";
import { StreamStore } from "./stream-store";
import { useTestRedis } from "./test-redis";

const redisOf = useTestRedis("test-slots", { beforeAll, afterAll });
let store: StreamStore;
let conversations: ConversationStore;

beforeAll(() => {
  store = new StreamStore(redisOf(), { leaseMs: 5000 });
  conversations = new ConversationStore(redisOf(), store);
});

/** A stream that holds its slots, as POST /api/chat makes it. */
async function open(slots: StreamSlots, sessionId: string, address: string) {
  const streamId = newId("st");
  const decision = await slots.acquire(sessionId, address, streamId);
  if (!decision.ok) return { decision };
  const turn = await conversations.beginTurn(sessionId, "hi", undefined, { streamId, slots: decision.keys });
  return { decision, turn };
}

/** Runs the stream to its `done` through the append script, as an AI node does. */
async function finish(sessionId: string, streamId: string, conversationId: string, messageId: string) {
  expect((await store.claim(streamId, 1, "ai-1")).status).toBe("claimed");
  await store.append(streamId, 1, sessionId, 0, { kind: "start", conversationId, messageId, aiNode: "ai-1" });
  // The writer passes the slots its meta names, as the AI node and the sweeper do.
  const meta = await store.meta(streamId);
  expect(meta?.slots).toBeDefined();
  await store.append(streamId, 1, sessionId, 1, { kind: "done", finishReason: "stop" }, meta?.slots);
}

describe("StreamSlots: concurrent answers per session and per address, in Redis", () => {
  it("refuses the session's answer past its cap, and frees a slot with the stream's done", async () => {
    const slots = new StreamSlots(redisOf(), { perSession: 2, perAddress: 10 }, 60_000);
    const sessionId = newId("sess");
    const first = await open(slots, sessionId, "10.0.0.1");
    const second = await open(slots, sessionId, "10.0.0.1");
    const third = await open(slots, sessionId, "10.0.0.1");
    expect(first.decision.ok && second.decision.ok).toBe(true);
    expect(third.decision).toEqual({ ok: false, scope: "session" });
    expect(await redisOf().zcard(keys.sessionSlots(sessionId))).toBe(2);
    // Nothing of the refused answer was written.
    expect(await redisOf().zcard(keys.addressSlots("10.0.0.1"))).toBe(2);

    const turn = first.turn!;
    await finish(sessionId, turn.streamId, turn.conversationId, turn.assistantMessageId);
    expect(await redisOf().zcard(keys.sessionSlots(sessionId))).toBe(1);
    expect(await redisOf().zcard(keys.addressSlots("10.0.0.1"))).toBe(1);
    expect((await open(slots, sessionId, "10.0.0.1")).decision.ok).toBe(true);
  });

  it("counts every session of one address together", async () => {
    const slots = new StreamSlots(redisOf(), { perSession: 5, perAddress: 3 }, 60_000);
    const address = "10.0.0.2";
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push((await open(slots, newId("sess"), address)).decision);
    expect(decisions.map((d) => d.ok)).toEqual([true, true, true, false]);
    expect(decisions[3]).toEqual({ ok: false, scope: "address" });
    // Another address is not affected.
    expect((await open(slots, newId("sess"), "10.0.0.3")).decision.ok).toBe(true);
  });

  it("a stream that never ends frees its slot when its hold lapses (no leak)", async () => {
    // holdMs = maxDuration + the failure bound: backdate the slot instead of waiting for it.
    const slots = new StreamSlots(redisOf(), { perSession: 1, perAddress: 10 }, 60_000);
    const sessionId = newId("sess");
    const { turn } = await open(slots, sessionId, "10.0.0.4");
    expect((await open(slots, sessionId, "10.0.0.4")).decision.ok).toBe(false);
    await redisOf().zadd(keys.sessionSlots(sessionId), Date.now() - 1, turn!.streamId);
    expect((await open(slots, sessionId, "10.0.0.4")).decision.ok).toBe(true);
    expect(slots.holdMs).toBe(60_000 + 30_000);
  });

  it("release frees both slots (a turn rolled back because no AI node took it)", async () => {
    const slots = new StreamSlots(redisOf(), { perSession: 1, perAddress: 1 }, 60_000);
    const sessionId = newId("sess");
    const { decision, turn } = await open(slots, sessionId, "10.0.0.5");
    if (!decision.ok) throw new Error("expected a slot");
    await slots.release(decision.keys, turn!.streamId);
    expect(await redisOf().zcard(decision.keys.session)).toBe(0);
    expect(await redisOf().zcard(decision.keys.address)).toBe(0);
  });

  it("slot sets expire on their own", async () => {
    const slots = new StreamSlots(redisOf(), { perSession: 3, perAddress: 3 }, 1000);
    const sessionId = newId("sess");
    await open(slots, sessionId, "10.0.0.6");
    const ttl = await redisOf().pttl(keys.sessionSlots(sessionId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(slots.holdMs);
  });
});

describe("StreamSlots.admit: a new chat's checks and its turn in one call", () => {
  const SESSION_RATE = { rate: 120, periodMs: 60_000, burst: 2 };
  const CHARS = { rate: 1000, periodMs: 60_000, burst: 100 };

  function setup(caps = { perSession: 2, perAddress: 10 }) {
    const redis = redisOf();
    return {
      redis,
      slots: new StreamSlots(redis, caps, 60_000),
      sessionRate: new RateLimiter(redis, "session", SESSION_RATE),
      chars: new RateLimiter(redis, "chars", CHARS),
      sessionId: newId("sess"),
      address: `10.1.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`,
    };
  }

  type Setup = ReturnType<typeof setup>;

  /** One chat as POST /api/chat admits it: the checks, then the turn's writes in the same call. */
  async function admit(s: Setup, message: string, options: { conversationId?: string; rate?: boolean } = {}) {
    const streamId = newId("st");
    const { turn, commands } = conversations.turnCommands(s.sessionId, message, options.conversationId, {
      streamId,
      slots: s.slots.keysFor(s.sessionId, s.address),
    });
    const decision = await s.slots.admit({
      sessionId: s.sessionId,
      address: s.address,
      streamId,
      sessionRate: options.rate === false ? undefined : s.sessionRate.call(s.sessionId),
      conversationKey: options.conversationId ? keys.conversation(options.conversationId) : undefined,
      chars: s.chars.call(s.address, message.length),
      writes: commands,
    });
    return { decision, turn };
  }

  /** What each limit holds for the setup: tokens charged show as a bucket key, slots as zset members. */
  async function state(s: Setup) {
    return {
      sessionBucket: await s.redis.get(keys.rate("session", s.sessionId)),
      charsBucket: await s.redis.get(keys.rate("chars", s.address)),
      sessionSlots: await s.redis.zcard(keys.sessionSlots(s.sessionId)),
      addressSlots: await s.redis.zcard(keys.addressSlots(s.address)),
      conversations: await s.redis.zcard(keys.sessionConversations(s.sessionId)),
    };
  }

  it("admitted: charges the session's rate and the address's characters, takes both slots, writes the turn", async () => {
    const s = setup();
    const { decision, turn } = await admit(s, "hello there");
    expect(decision).toEqual({ ok: true, keys: s.slots.keysFor(s.sessionId, s.address) });
    const after = await state(s);
    expect(after.sessionBucket).not.toBeNull();
    expect(after.charsBucket).not.toBeNull();
    expect(after).toMatchObject({ sessionSlots: 1, addressSlots: 1, conversations: 1 });
    // The turn is what beginTurn writes: the messages, and the queued stream with its slots.
    expect((await conversations.history(turn.conversationId)).map((m) => [m.role, m.content])).toEqual([
      ["user", "hello there"],
      ["assistant", ""],
    ]);
    const meta = await store.meta(turn.streamId);
    expect(meta).toMatchObject({ status: "queued", sessionId: s.sessionId });
    expect(meta?.slots).toEqual(s.slots.keysFor(s.sessionId, s.address));
    expect(await conversations.ownerOf(turn.conversationId)).toBe(s.sessionId);
  });

  it("the same decisions and Retry-After as the separate checks, and the same Lua: charges match RateLimiter.check", async () => {
    const a = setup();
    const b = setup();
    // Session rate: burst 2, then refused, with the Retry-After RateLimiter.check gives.
    for (let i = 0; i < 2; i++) {
      expect((await admit(a, "x")).decision.ok).toBe(true);
      expect((await b.sessionRate.check(b.sessionId)).allowed).toBe(true);
    }
    const refused = (await admit(a, "x")).decision;
    const separate = await b.sessionRate.check(b.sessionId);
    expect(separate.allowed).toBe(false);
    expect(refused).toEqual({
      ok: false,
      refused: "session_rate",
      decision: { allowed: false, retryAfterSeconds: !separate.allowed ? separate.retryAfterSeconds : -1 },
    });
  });

  it("session rate refused: nothing after it is charged, nothing written", async () => {
    const s = setup();
    // Spend the session's burst (2) without taking slots.
    for (let i = 0; i < 2; i++) expect((await s.sessionRate.check(s.sessionId)).allowed).toBe(true);
    const { decision, turn } = await admit(s, "hello");
    expect(decision).toMatchObject({ ok: false, refused: "session_rate" });
    expect(await state(s)).toMatchObject({ charsBucket: null, sessionSlots: 0, addressSlots: 0, conversations: 0 });
    expect(await store.meta(turn.streamId)).toBeUndefined();
  });

  it("a conversation of another session (or none): refused after the rate, before the characters", async () => {
    const s = setup();
    const other = await conversations.beginTurn(newId("sess"), "not yours");
    const before = await s.redis.llen(keys.conversationMessages(other.conversationId));
    for (const conversationId of [other.conversationId, "conv_doesnotexist00"]) {
      const { decision } = await admit(s, "hello", { conversationId });
      expect(decision).toEqual({ ok: false, refused: "conversation" });
    }
    const after = await state(s);
    expect(after.sessionBucket).not.toBeNull();
    expect(after).toMatchObject({ charsBucket: null, sessionSlots: 0, addressSlots: 0 });
    expect(await s.redis.llen(keys.conversationMessages(other.conversationId))).toBe(before);
  });

  it("the session's own conversation: admitted, the turn appended to it", async () => {
    const s = setup();
    const first = await admit(s, "first");
    const second = await admit(s, "second", { conversationId: first.turn.conversationId });
    expect(second.decision.ok).toBe(true);
    expect(second.turn.newConversation).toBe(false);
    expect((await conversations.history(first.turn.conversationId)).map((m) => m.content)).toEqual([
      "first",
      "",
      "second",
      "",
    ]);
  });

  it("characters refused: the rate stays charged (as before), no slot taken, nothing written", async () => {
    const s = setup();
    const { decision, turn } = await admit(s, "x".repeat(CHARS.burst + 1));
    expect(decision).toMatchObject({ ok: false, refused: "message_chars" });
    if (decision.ok || decision.refused !== "message_chars") throw new Error("expected message_chars");
    expect(decision.decision.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    const after = await state(s);
    expect(after.sessionBucket).not.toBeNull();
    expect(after).toMatchObject({ charsBucket: null, sessionSlots: 0, addressSlots: 0, conversations: 0 });
    expect(await store.meta(turn.streamId)).toBeUndefined();
  });

  it("slots refused (session, then address): the characters stay charged (as before), nothing written", async () => {
    const s = setup({ perSession: 1, perAddress: 10 });
    expect((await admit(s, "one", { rate: false })).decision.ok).toBe(true);
    const charsBefore = await s.redis.get(keys.rate("chars", s.address));
    const { decision, turn } = await admit(s, "two", { rate: false });
    expect(decision).toEqual({ ok: false, refused: "streams", scope: "session" });
    expect(await s.redis.get(keys.rate("chars", s.address))).not.toBe(charsBefore);
    expect(await store.meta(turn.streamId)).toBeUndefined();
    expect(await state(s)).toMatchObject({ sessionSlots: 1, addressSlots: 1, conversations: 1 });

    const t = setup({ perSession: 10, perAddress: 1 });
    expect((await admit(t, "one", { rate: false })).decision.ok).toBe(true);
    const other = { ...t, sessionId: newId("sess") };
    expect((await admit(other, "two", { rate: false })).decision).toEqual({
      ok: false,
      refused: "streams",
      scope: "address",
    });
    expect(await state(other)).toMatchObject({ sessionSlots: 0, conversations: 0 });
  });

  it("without a session rate step (the caller charged it already): the rate is not touched", async () => {
    const s = setup();
    expect((await admit(s, "hello", { rate: false })).decision.ok).toBe(true);
    expect((await state(s)).sessionBucket).toBeNull();
  });
});
