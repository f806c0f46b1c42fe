import type { FinishReason } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ConversationStore,
  decodeHistoryCursor,
  encodeHistoryCursor,
  type HistoryPage,
  type Turn,
  titleFrom,
} from "./conversations";
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
      textSeq: -1,
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

describe("ConversationStore.promptUpTo's reads", () => {
  /** Calls of each command since the last CONFIG RESETSTAT. */
  async function calls(): Promise<Record<string, number>> {
    const info = await redis.info("commandstats");
    return Object.fromEntries([...info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  }

  it("a conversation's first turn is one round trip: the window script and the user message, sent together", async () => {
    const turn = await conversations.beginTurn(newId("sess"), "first question");
    await redis.config("RESETSTAT");
    const sent = vi.spyOn(redis, "sendCommand");
    const prompt = conversations.promptUpTo(turn.conversationId, turn.userMessageId);
    // Both commands are on the wire before either reply came back.
    expect(sent.mock.calls.map(([command]) => command.name)).toEqual(["evalsha", "hgetall"]);
    expect(await prompt).toEqual([{ role: "user", content: "first question" }]);
    sent.mockRestore();
    const counted = await calls();
    expect({ evalsha: counted.evalsha, hgetall: counted.hgetall, eval: counted.eval }).toEqual({
      evalsha: 1,
      hgetall: 1,
      eval: undefined,
    });
  });

  it("a later turn reads the earlier messages after the window, the user message not twice", async () => {
    const sessionId = newId("sess");
    const t1 = await conversations.beginTurn(sessionId, "q1");
    await run(sessionId, t1, ["a1"], "stop");
    const t2 = await conversations.beginTurn(sessionId, "q2", t1.conversationId);
    await redis.config("RESETSTAT");
    expect(await conversations.promptUpTo(t1.conversationId, t2.userMessageId)).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
    ]);
    // q2 (with the window), then q1 and a1; then a1's stream.
    expect((await calls()).hgetall).toBe(3);
  });
});

/** A conversation of `turns` turns (2 messages each), every answer complete with text `a<i>`; questions `q<i>`. */
async function conversationOf(turns: number): Promise<{ sessionId: string; conversationId: string; turns: Turn[] }> {
  const sessionId = newId("sess");
  const made: Turn[] = [];
  for (let i = 0; i < turns; i++) {
    const turn = await conversations.beginTurn(sessionId, `q${i}`, made[0]?.conversationId);
    await run(sessionId, turn, [`a${i}`], "stop");
    made.push(turn);
  }
  return { sessionId, conversationId: made[0]!.conversationId, turns: made };
}

/** Counts the commands Redis runs while `action` runs (MONITOR on its own connection). */
async function commandsDuring(action: () => Promise<unknown>): Promise<string[][]> {
  const monitor = await redis.monitor();
  const seen: string[][] = [];
  monitor.on("monitor", (_time: string, args: string[]) => seen.push(args));
  await action();
  // A marker command: once MONITOR has shown it, everything before it has been seen too.
  const marker = `marker-${newId("msg")}`;
  const markerSeen = new Promise<void>((resolve) =>
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[1] === marker) resolve();
    }),
  );
  await redis.exists(marker);
  await markerSeen;
  monitor.disconnect();
  return seen.filter((args) => args[1] !== marker);
}

describe("ConversationStore.historyPage", () => {
  it("pages a conversation of 130 messages from the newest: 50, 50, 30, oldest first within a page", async () => {
    const { conversationId } = await conversationOf(65);
    const all = await conversations.history(conversationId);
    expect(all).toHaveLength(130);
    const first = await conversations.historyPage(conversationId, { limit: 50 });
    expect(first.messages).toEqual(all.slice(80));
    expect(first.nextCursor).toBeDefined();
    expect(decodeHistoryCursor(first.nextCursor!)).toBe(80);
    const second = await conversations.historyPage(conversationId, {
      limit: 50,
      before: decodeHistoryCursor(first.nextCursor!),
    });
    expect(second.messages).toEqual(all.slice(30, 80));
    const third = await conversations.historyPage(conversationId, {
      limit: 50,
      before: decodeHistoryCursor(second.nextCursor!),
    });
    expect(third).toEqual({ messages: all.slice(0, 30) });
    // Together: the whole conversation once, in order.
    expect([...third.messages, ...second.messages, ...first.messages]).toEqual(all);
    expect(first.messages.map((m) => m.content).slice(0, 2)).toEqual(["q40", "a40"]);
  });

  it("exact boundaries: a conversation of exactly one page has no cursor; two exact pages end without one", async () => {
    const { conversationId } = await conversationOf(5); // 10 messages
    expect(await conversations.historyPage(conversationId, { limit: 10 })).toEqual({
      messages: await conversations.history(conversationId),
    });
    const first = await conversations.historyPage(conversationId, { limit: 5 });
    expect(first.messages.map((m) => m.content)).toEqual(["a2", "q3", "a3", "q4", "a4"]);
    expect(decodeHistoryCursor(first.nextCursor!)).toBe(5);
    const second = await conversations.historyPage(conversationId, { limit: 5, before: 5 });
    expect(second.messages.map((m) => m.content)).toEqual(["q0", "a0", "q1", "a1", "q2"]);
    expect(second.nextCursor).toBeUndefined();
    // limit 1 walks one message at a time.
    const last = await conversations.historyPage(conversationId, { limit: 1 });
    expect(last.messages.map((m) => m.content)).toEqual(["a4"]);
    expect(decodeHistoryCursor(last.nextCursor!)).toBe(9);
  });

  it("a cursor past the start is an empty last page; past the end reads from the end", async () => {
    const { conversationId } = await conversationOf(3);
    expect(await conversations.historyPage(conversationId, { limit: 50, before: 0 })).toEqual({ messages: [] });
    const all = await conversations.history(conversationId);
    expect(await conversations.historyPage(conversationId, { limit: 4, before: 1000 })).toEqual({
      messages: all.slice(2),
      nextCursor: encodeHistoryCursor(2),
    });
    expect(await conversations.historyPage(newId("conv"), { limit: 50 })).toEqual({ messages: [] });
  });

  it("a conversation that grows between pages keeps its pages consistent: no message lost or repeated", async () => {
    const { sessionId, conversationId } = await conversationOf(10); // 20 messages
    const before = await conversations.history(conversationId);
    const first = await conversations.historyPage(conversationId, { limit: 8 });
    expect(first.messages).toEqual(before.slice(12));
    // Three more turns arrive while the client reads older pages.
    for (let i = 0; i < 3; i++) await conversations.beginTurn(sessionId, `late ${i}`, conversationId);
    const pages: HistoryPage[] = [first];
    let cursor = first.nextCursor;
    while (cursor) {
      const page = await conversations.historyPage(conversationId, { limit: 8, before: decodeHistoryCursor(cursor) });
      pages.unshift(page);
      cursor = page.nextCursor;
    }
    expect(pages.map((p) => p.messages.length)).toEqual([4, 8, 8]);
    expect(pages.flatMap((p) => p.messages)).toEqual(before);
    // And a fresh first page shows the new turns.
    const fresh = await conversations.historyPage(conversationId, { limit: 6 });
    expect(fresh.messages.filter((m) => m.role === "user").map((m) => m.content)).toEqual([
      "late 0",
      "late 1",
      "late 2",
    ]);
  });

  it("a page costs bounded Redis work: one script call for its ids, then reads of that page's messages only", async () => {
    const { conversationId } = await conversationOf(65);
    const commands = await commandsDuring(() => conversations.historyPage(conversationId, { limit: 10 }));
    const names = commands.map((args) => args[0]!.toLowerCase());
    // MONITOR also shows the commands a script runs: one LRANGE of exactly the page (entries 120..129), and for
    // each of its 5 answers one text read (READ_TEXT: the meta's HMGET and the text list's LRANGE, and its last
    // seq from the meta, the list's length and the history's last entry).
    const lrange = commands.filter((args) => args[0]!.toLowerCase() === "lrange").map((args) => args.slice(1));
    expect(lrange.filter(([key]) => key === keys.conversationMessages(conversationId))).toEqual([
      [keys.conversationMessages(conversationId), "120", "129"],
    ]);
    expect(lrange.filter(([key]) => key?.includes(":text:"))).toHaveLength(5);
    expect(lrange).toHaveLength(6);
    expect(names.filter((n) => n === "hgetall")).toHaveLength(10);
    expect(names.filter((n) => n === "hmget")).toHaveLength(10);
    expect(names.filter((n) => n === "llen")).toHaveLength(6); // the page's, and one per answer
    expect(names.filter((n) => n === "xrevrange")).toHaveLength(5);
    expect(names.filter((n) => n === "evalsha")).toHaveLength(6);
  });

  it("cursors are opaque, canonical and refuse anything else", () => {
    for (const index of [0, 1, 80, 1_000_000]) {
      const cursor = encodeHistoryCursor(index);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
      expect(decodeHistoryCursor(cursor)).toBe(index);
    }
    const forged = [
      "",
      "80",
      Buffer.from("h1:-1").toString("base64url"),
      Buffer.from("h1:01").toString("base64url"),
      Buffer.from("h1:1.5").toString("base64url"),
      Buffer.from("h2:1").toString("base64url"),
      Buffer.from("h1:99999999999").toString("base64url"),
      `${encodeHistoryCursor(80)}=`,
      "a b",
      "x".repeat(40),
    ];
    for (const cursor of forged) expect(decodeHistoryCursor(cursor), cursor).toBeUndefined();
  });
});

describe("ConversationStore.promptUpTo with a budget", () => {
  /** q<i>/a<i> turns with answers of the given lengths. */
  async function sized(answerChars: number[]) {
    const sessionId = newId("sess");
    const made: Turn[] = [];
    for (let i = 0; i < answerChars.length; i++) {
      const turn = await conversations.beginTurn(sessionId, `q${i}`, made[0]?.conversationId);
      await run(sessionId, turn, ["x".repeat(answerChars[i]!)], "stop");
      made.push(turn);
    }
    const last = await conversations.beginTurn(sessionId, "now?", made[0]!.conversationId);
    return { conversationId: last.conversationId, turns: made, last };
  }

  it("keeps the newest whole turns that fit maxChars, oldest dropped first, and always the user message", async () => {
    const { conversationId, last } = await sized([10, 10, 10, 10]);
    // Each turn is 2 + 10 = 12 chars; the user message 4.
    const prompt = await conversations.promptUpTo(conversationId, last.userMessageId, {
      maxChars: 4 + 12 * 2 + 11,
      maxMessages: 100,
    });
    expect(prompt.map((m) => m.content.slice(0, 2))).toEqual(["q2", "xx", "q3", "xx", "no"]);
    expect(prompt.reduce((n, m) => n + m.content.length, 0)).toBeLessThanOrEqual(4 + 12 * 2 + 11);
    // A budget smaller than the user message still gives the user message.
    expect(
      await conversations.promptUpTo(conversationId, last.userMessageId, { maxChars: 1, maxMessages: 100 }),
    ).toEqual([{ role: "user", content: "now?" }]);
    // A generous budget gives everything, as before.
    expect(
      await conversations.promptUpTo(conversationId, last.userMessageId, { maxChars: 1_000, maxMessages: 100 }),
    ).toHaveLength(9);
  });

  it("reads at most maxMessages entries, the user message included, and drops an answer cut from its question", async () => {
    const { conversationId, last } = await sized([1, 1, 1, 1]);
    const prompt = await conversations.promptUpTo(conversationId, last.userMessageId, {
      maxChars: 1_000,
      maxMessages: 4,
    });
    // The window is a2, q3, a3, now?: a2's question is outside it, so a2 is left out too.
    expect(prompt).toEqual([
      { role: "user", content: "q3" },
      { role: "assistant", content: "x" },
      { role: "user", content: "now?" },
    ]);
    const commands = await commandsDuring(() =>
      conversations.promptUpTo(conversationId, last.userMessageId, { maxChars: 1_000, maxMessages: 4 }),
    );
    expect(commands.filter((args) => args[0]!.toLowerCase() === "hgetall")).toHaveLength(4);
    // The list is read from the user message back: 4 entries, not the conversation (10 entries).
    const ranges = commands
      .filter((args) => args[0]!.toLowerCase() === "lrange" && args[1] === keys.conversationMessages(conversationId))
      .map((args) => args.slice(2));
    expect(ranges).toEqual([["5", "8"]]);
  });

  it("a prompt for an earlier user message stops there; skipped answers still do not appear", async () => {
    const sessionId = newId("sess");
    const t1 = await conversations.beginTurn(sessionId, "q1");
    const t2 = await conversations.beginTurn(sessionId, "q2", t1.conversationId);
    await conversations.beginTurn(sessionId, "q3", t1.conversationId);
    await run(sessionId, t1, ["a1"], "stop");
    await run(sessionId, t2, ["partial"], "cancelled");
    expect(
      await conversations.promptUpTo(t1.conversationId, t2.userMessageId, { maxChars: 100, maxMessages: 10 }),
    ).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
    ]);
    // A message that is not in the list: nothing to give.
    expect(await conversations.promptUpTo(t1.conversationId, newId("msg"))).toEqual([]);
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
      keys.streamText(turn.streamId, 1),
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
