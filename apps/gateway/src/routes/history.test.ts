import { ConversationStore, connectRedis, createRedis, newId, StreamStore } from "@chatgrid/broker";
import { HistoryResponseSchema } from "@chatgrid/protocol";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../../../../packages/broker/src/test-redis";
import type { ApiDeps, ApiEnv } from "../http/context";
import { historyRoutes } from "./history";

let server: TestRedis;
let redis: Redis;
let conversations: ConversationStore;
let app: Hono<ApiEnv>;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "history-route-test");
  redis.on("error", () => undefined);
  await connectRedis(redis, 10_000);
  const streams = new StreamStore(redis, { dispatchDeadlineMs: 10_000 });
  conversations = new ConversationStore(redis, streams);
  app = new Hono<ApiEnv>();
  // requireSession's part, reduced: the session is the one the test names.
  app.use("*", async (c, next) => {
    c.set("sessionId", c.req.header("x-test-session") ?? "");
    await next();
  });
  // The history routes use only the conversation store.
  app.route("/api", historyRoutes({ conversations } as unknown as ApiDeps));
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** A conversation of `turns` turns (their answers still queued: the route reads them as `streaming`). */
async function conversationOf(turns: number) {
  const sessionId = newId("sess");
  let conversationId: string | undefined;
  for (let i = 0; i < turns; i++) {
    conversationId = (await conversations.beginTurn(sessionId, `q${i}`, conversationId)).conversationId;
  }
  return { sessionId, conversationId: conversationId! };
}

async function get(sessionId: string, query: Record<string, string>) {
  const response = await app.request(`/api/history?${new URLSearchParams(query)}`, {
    headers: { "x-test-session": sessionId },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("GET /api/history pages", () => {
  it("the newest 50 by default; following nextCursor gives the whole conversation once, in order", async () => {
    const { sessionId, conversationId } = await conversationOf(65); // 130 messages
    const all = await conversations.history(conversationId);
    const first = await get(sessionId, { conversationId });
    expect(first.status).toBe(200);
    const page = HistoryResponseSchema.parse(first.body);
    expect(page.messages).toEqual(all.slice(80));
    const pages = [page];
    while (pages[0]!.nextCursor) {
      const next = await get(sessionId, { conversationId, cursor: pages[0]!.nextCursor });
      expect(next.status).toBe(200);
      pages.unshift(HistoryResponseSchema.parse(next.body));
    }
    expect(pages.map((p) => p.messages.length)).toEqual([30, 50, 50]);
    expect(pages.flatMap((p) => p.messages)).toEqual(all);
    expect(pages[0]).not.toHaveProperty("nextCursor");
  });

  it("limit chooses the page size, up to 200", async () => {
    const { sessionId, conversationId } = await conversationOf(110); // 220 messages
    const seven = HistoryResponseSchema.parse((await get(sessionId, { conversationId, limit: "7" })).body);
    // Entries 213..219: the answer of q106, then three whole turns (answers queued: no text yet).
    expect(seven.messages.map((m) => m.content)).toEqual(["", "q107", "", "q108", "", "q109", ""]);
    expect(seven.messages[0]?.role).toBe("assistant");
    const most = HistoryResponseSchema.parse((await get(sessionId, { conversationId, limit: "200" })).body);
    expect(most.messages).toHaveLength(200);
    const rest = HistoryResponseSchema.parse(
      (await get(sessionId, { conversationId, limit: "200", cursor: most.nextCursor! })).body,
    );
    expect(rest.messages).toHaveLength(20);
    expect(rest.nextCursor).toBeUndefined();
  });

  it("a bad limit, cursor or conversationId is 400 bad_request naming the field", async () => {
    const { sessionId, conversationId } = await conversationOf(1);
    const cases: [Record<string, string>, string][] = [
      [{ conversationId, limit: "0" }, "limit"],
      [{ conversationId, limit: "201" }, "limit"],
      [{ conversationId, limit: "abc" }, "limit"],
      [{ conversationId, limit: "1.5" }, "limit"],
      [{ conversationId, limit: "" }, "limit"],
      [{ conversationId, cursor: "!!" }, "cursor"],
      [{ conversationId, cursor: "x".repeat(33) }, "cursor"],
      [{ conversationId, cursor: Buffer.from("h1:01").toString("base64url") }, "cursor"],
      [{ conversationId, cursor: Buffer.from("h1:-5").toString("base64url") }, "cursor"],
      [{ conversationId, cursor: "" }, "cursor"],
      [{}, "conversationId"],
      [{ conversationId: "conv with spaces" }, "conversationId"],
    ];
    for (const [query, field] of cases) {
      const response = await get(sessionId, query);
      expect(response.status, JSON.stringify(query)).toBe(400);
      expect(response.body, JSON.stringify(query)).toEqual({
        error: { code: "bad_request", message: expect.stringMatching(new RegExp(`^${field}: `)) },
      });
    }
  });

  it("another session's conversation is 404 with or without a cursor", async () => {
    const { conversationId } = await conversationOf(30);
    const cursor = Buffer.from("h1:10").toString("base64url");
    const queries: Record<string, string>[] = [{ conversationId }, { conversationId, cursor }];
    for (const query of queries) {
      const response = await get(newId("sess"), query);
      expect(response).toEqual({ status: 404, body: { error: { code: "not_found", message: expect.any(String) } } });
    }
  });
});
