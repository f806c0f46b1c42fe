import type { FinishReason } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ConversationStore, titleFrom } from "./conversations";
import { newId } from "./ids";
import { keys } from "./keys";
import { connectRedis, createRedis } from "./redis";
import { StreamStore } from "./stream-store";
import { startTestRedis, type TestRedis } from "./test-redis";

let server: TestRedis;
let redis: Redis;
let streams: StreamStore;
let conversations: ConversationStore;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "test-conversations");
  redis.on("error", () => undefined);
  await connectRedis(redis, 10_000);
  streams = new StreamStore(redis, { dispatchDeadlineMs: 10_000 });
  conversations = new ConversationStore(redis, streams);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Runs a claimed stream to the given end (or leaves it streaming), with the given chunks. */
async function run(
  sessionId: string,
  turn: { streamId: string; conversationId: string; assistantMessageId: string },
  chunks: string[],
  finish?: FinishReason,
): Promise<void> {
  expect((await streams.claim(turn.streamId, 1, "ai-1")).status).toBe("claimed");
  let seq = 0;
  const start = { conversationId: turn.conversationId, messageId: turn.assistantMessageId, aiNode: "ai-1" };
  expect((await streams.append(turn.streamId, 1, sessionId, seq++, { kind: "start", ...start })).ok).toBe(true);
  for (const delta of chunks) {
    expect((await streams.append(turn.streamId, 1, sessionId, seq++, { kind: "chunk", delta })).ok).toBe(true);
  }
  if (finish) {
    const done = await streams.append(turn.streamId, 1, sessionId, seq++, { kind: "done", finishReason: finish });
    expect(done.ok).toBe(true);
  }
}

describe("ConversationStore.beginTurn", () => {
  it("writes the conversation, both messages and a queued stream with attempt 1", async () => {
    const sessionId = newId("sess");
    const before = Date.now();
    const turn = await conversations.beginTurn(sessionId, "  What is Redis?\nTell me more  ");
    expect(turn.newConversation).toBe(true);
    expect(turn.conversationId).toMatch(/^conv_/);
    expect(turn.userMessageId).toMatch(/^msg_/);
    expect(turn.assistantMessageId).toMatch(/^msg_/);
    expect(turn.streamId).toMatch(/^st_/);
    expect(await conversations.ownerOf(turn.conversationId)).toBe(sessionId);
    expect(await streams.meta(turn.streamId)).toEqual({
      streamId: turn.streamId,
      sessionId,
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      userMessageId: turn.userMessageId,
      status: "queued",
      attempt: 1,
      seq: -1,
      node: undefined,
      finishReason: undefined,
      cancelRequested: false,
      createdAt: expect.any(Number),
    });
    const deadline = Number(await redis.zscore(keys.watch(), turn.streamId));
    expect(deadline).toBeGreaterThanOrEqual(before + 10_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 10_000);
    expect(await conversations.list(sessionId)).toEqual([
      {
        id: turn.conversationId,
        title: "What is Redis?",
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      },
    ]);
    // Everything it wrote expires with the retention TTL.
    for (const key of [
      keys.conversation(turn.conversationId),
      keys.conversationMessages(turn.conversationId),
      keys.message(turn.userMessageId),
      keys.message(turn.assistantMessageId),
      keys.sessionConversations(sessionId),
      keys.streamMeta(turn.streamId),
    ]) {
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    }
  });

  it("a second turn in the same conversation is not a new conversation and keeps the title", async () => {
    const sessionId = newId("sess");
    const first = await conversations.beginTurn(sessionId, "first question");
    const second = await conversations.beginTurn(sessionId, "second question", first.conversationId);
    expect(second.newConversation).toBe(false);
    expect(second.conversationId).toBe(first.conversationId);
    expect(second.streamId).not.toBe(first.streamId);
    const list = await conversations.list(sessionId);
    expect(list).toHaveLength(1);
    expect(list[0]?.title).toBe("first question");
  });
});

describe("ConversationStore.history", () => {
  it("returns the messages in order with the assistant text and status of each stream", async () => {
    const sessionId = newId("sess");
    const t1 = await conversations.beginTurn(sessionId, "one");
    const c = t1.conversationId;
    const t2 = await conversations.beginTurn(sessionId, "two", c);
    const t3 = await conversations.beginTurn(sessionId, "three", c);
    const t4 = await conversations.beginTurn(sessionId, "four", c);
    const t5 = await conversations.beginTurn(sessionId, "five", c);
    await run(sessionId, t1, ["Hello", " there"], "stop");
    await run(sessionId, t2, ["partial"], "cancelled");
    await run(sessionId, t3, ["oops"], "error");
    await run(sessionId, t4, ["so far"]);
    // t5 is still queued.

    const history = await conversations.history(c);
    expect(history.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "one", "complete"],
      ["assistant", "Hello there", "complete"],
      ["user", "two", "complete"],
      ["assistant", "partial", "cancelled"],
      ["user", "three", "complete"],
      ["assistant", "oops", "error"],
      ["user", "four", "complete"],
      ["assistant", "so far", "streaming"],
      ["user", "five", "complete"],
      ["assistant", "", "streaming"],
    ]);
    const turns = [t1, t2, t3, t4, t5];
    expect(history.map((m) => m.id)).toEqual(turns.flatMap((t) => [t.userMessageId, t.assistantMessageId]));
    expect(history.filter((m) => m.role === "assistant").map((m) => m.streamId)).toEqual(turns.map((t) => t.streamId));
    for (const message of history) {
      if (message.role === "user") expect(message.streamId).toBeUndefined();
      expect(Number.isNaN(Date.parse(message.createdAt))).toBe(false);
    }
  });

  it("a 'length' finish counts as complete", async () => {
    const sessionId = newId("sess");
    const turn = await conversations.beginTurn(sessionId, "long");
    await run(sessionId, turn, ["cut"], "length");
    expect((await conversations.history(turn.conversationId)).at(-1)).toMatchObject({
      status: "complete",
      content: "cut",
    });
  });

  it("an unknown conversation has no messages", async () => {
    expect(await conversations.history(newId("conv"))).toEqual([]);
  });

  it("promptUpTo feeds completed answers only, up to the given user message", async () => {
    const sessionId = newId("sess");
    const t1 = await conversations.beginTurn(sessionId, "q1");
    const t2 = await conversations.beginTurn(sessionId, "q2", t1.conversationId);
    const t3 = await conversations.beginTurn(sessionId, "q3", t1.conversationId);
    await run(sessionId, t1, ["a1"], "stop");
    await run(sessionId, t2, ["broken"], "error");
    expect(await conversations.promptUpTo(t1.conversationId, t2.userMessageId)).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
    ]);
    expect(await conversations.promptUpTo(t1.conversationId, t3.userMessageId)).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
      { role: "user", content: "q3" },
    ]);
  });
});

describe("ConversationStore.list", () => {
  it("lists the session's conversations newest first; a new turn moves a conversation to the top", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const sessionId = newId("sess");
    vi.setSystemTime(new Date("2030-01-01T00:00:01Z"));
    const a = await conversations.beginTurn(sessionId, "conversation A");
    vi.setSystemTime(new Date("2030-01-01T00:00:02Z"));
    const b = await conversations.beginTurn(sessionId, "conversation B");
    vi.setSystemTime(new Date("2030-01-01T00:00:03Z"));
    const c = await conversations.beginTurn(sessionId, "conversation C");
    expect((await conversations.list(sessionId)).map((s) => s.id)).toEqual([
      c.conversationId,
      b.conversationId,
      a.conversationId,
    ]);
    vi.setSystemTime(new Date("2030-01-01T00:00:04Z"));
    await conversations.beginTurn(sessionId, "more on A", a.conversationId);
    const list = await conversations.list(sessionId);
    expect(list.map((s) => s.id)).toEqual([a.conversationId, c.conversationId, b.conversationId]);
    expect(list[0]).toEqual({
      id: a.conversationId,
      title: "conversation A",
      createdAt: "2030-01-01T00:00:01.000Z",
      updatedAt: "2030-01-01T00:00:04.000Z",
    });
    expect((await conversations.list(sessionId, 2)).map((s) => s.id)).toEqual([a.conversationId, c.conversationId]);
    // Another session sees none of them.
    expect(await conversations.list(newId("sess"))).toEqual([]);
  });
});

describe("ConversationStore.rollbackTurn", () => {
  it("removes everything beginTurn wrote for a new conversation", async () => {
    const sessionId = newId("sess");
    const turn = await conversations.beginTurn(sessionId, "never dispatched");
    await conversations.rollbackTurn(sessionId, turn);
    for (const key of [
      keys.conversation(turn.conversationId),
      keys.conversationMessages(turn.conversationId),
      keys.message(turn.userMessageId),
      keys.message(turn.assistantMessageId),
      keys.streamMeta(turn.streamId),
      keys.streamEvents(turn.streamId),
      keys.streamText(turn.streamId),
      keys.streamLease(turn.streamId),
    ]) {
      expect(await redis.exists(key), key).toBe(0);
    }
    expect(await redis.zscore(keys.watch(), turn.streamId)).toBeNull();
    expect(await redis.zscore(keys.sessionConversations(sessionId), turn.conversationId)).toBeNull();
    expect(await conversations.ownerOf(turn.conversationId)).toBeUndefined();
    expect(await conversations.list(sessionId)).toEqual([]);
    expect(await conversations.history(turn.conversationId)).toEqual([]);
  });

  it("in an existing conversation removes only the rolled-back turn", async () => {
    const sessionId = newId("sess");
    const first = await conversations.beginTurn(sessionId, "kept");
    await run(sessionId, first, ["answer"], "stop");
    const before = await conversations.history(first.conversationId);
    const turn = await conversations.beginTurn(sessionId, "rolled back", first.conversationId);
    await conversations.rollbackTurn(sessionId, turn);
    expect(await conversations.history(first.conversationId)).toEqual(before);
    expect(await conversations.ownerOf(first.conversationId)).toBe(sessionId);
    expect((await conversations.list(sessionId)).map((s) => s.id)).toEqual([first.conversationId]);
    expect(await redis.exists(keys.message(turn.userMessageId), keys.message(turn.assistantMessageId))).toBe(0);
    expect(await streams.meta(turn.streamId)).toBeUndefined();
    expect(await redis.zscore(keys.watch(), turn.streamId)).toBeNull();
    // The first turn's stream is untouched.
    expect(await streams.meta(first.streamId)).toMatchObject({ status: "done", finishReason: "stop" });
  });
});

describe("titleFrom", () => {
  it("is the first line, trimmed", () => {
    expect(titleFrom("  Hello world  ")).toBe("Hello world");
    expect(titleFrom("First line\nsecond line")).toBe("First line");
    expect(titleFrom("\n\n  After blank lines\nx")).toBe("After blank lines");
    expect(titleFrom("Windows line\r\nnext")).toBe("Windows line");
  });

  it("falls back to 'New chat' for blank text", () => {
    expect(titleFrom("")).toBe("New chat");
    expect(titleFrom("   \n  ")).toBe("New chat");
  });

  it("keeps 80 characters and shortens longer lines to 79 plus an ellipsis", () => {
    const exactly80 = "a".repeat(80);
    expect(titleFrom(exactly80)).toBe(exactly80);
    const long = "b".repeat(81);
    const title = titleFrom(long);
    expect(title).toBe(`${"b".repeat(79)}…`);
    expect(title).toHaveLength(80);
  });
});
