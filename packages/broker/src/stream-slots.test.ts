import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationStore } from "./conversations";
import { newId } from "./ids";
import { keys } from "./keys";
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
