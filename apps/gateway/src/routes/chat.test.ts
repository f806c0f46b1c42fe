import {
  ConversationStore,
  connectRedis,
  createLogger,
  createRedis,
  keys,
  RateLimiter,
  SessionStore,
  StreamSlots,
  StreamStore,
} from "@chatgrid/broker";
import { DisabledEventProducer } from "@chatgrid/events";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../../../../packages/broker/src/test-redis";
import { AiBalancer } from "../ai-balancer";
import { registerGatewayRoutes } from "../app";
import type { ApiDeps, ApiEnv } from "../http/context";
import { createGatewayMetrics } from "../metrics";

let server: TestRedis;
let redis: Redis;
let sessions: SessionStore;
let conversations: ConversationStore;
let streams: StreamStore;
const dispatched: string[] = [];

/** The session rate's burst, the address's characters' burst, the slots' caps: small, so each limit is reached. */
const SESSION_BURST = 4;
const CHARS_BURST = 50;
const CAPS = { perSession: 2, perAddress: 3 };

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "chat-route-test");
  redis.on("error", () => undefined);
  await connectRedis(redis, 10_000);
  streams = new StreamStore(redis, { dispatchDeadlineMs: 10_000 });
  sessions = new SessionStore(redis, 60_000);
  conversations = new ConversationStore(redis, streams);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** The gateway's REST routes on this Redis, with AI nodes that accept every dispatch (an injected fetch). */
function gateway() {
  const metrics = createGatewayMetrics();
  const balancer = new AiBalancer({
    clusterSecret: "k".repeat(32),
    staticNodes: [{ name: "ai-1", url: "http://ai-1.test:7000" }],
    dispatchTimeoutMs: 1000,
    cooldownMs: 60_000,
    probeIntervalMs: 60_000,
    log: createLogger("test", "silent"),
    metrics,
    fetch: (async (_input: string | URL | Request, init?: RequestInit) => {
      dispatched.push(JSON.parse(String(init?.body)).streamId);
      return new Response('{"status":"claimed"}', { status: 202 });
    }) as typeof fetch,
  });
  const deps: ApiDeps = {
    node: "gw-test",
    sessions,
    streams,
    conversations,
    rateLimiter: new RateLimiter(redis, "session", { rate: 1, periodMs: 60_000, burst: SESSION_BURST }),
    sessionCreateLimiter: new RateLimiter(redis, "create", { rate: 100, periodMs: 60_000, burst: 100 }),
    messageCharsLimiter: new RateLimiter(redis, "chars", { rate: 1, periodMs: 60_000, burst: CHARS_BURST }),
    slots: new StreamSlots(redis, CAPS, 60_000),
    clientAddressHeader: "x-real-ip",
    balancer,
    metrics,
    log: createLogger("test", "silent"),
    events: new DisabledEventProducer(),
    redisReady: () => true,
  };
  const app = registerGatewayRoutes(new Hono<ApiEnv>(), deps, redis, { allowedOrigins: [], acceptSocket: () => false });
  return { app, metrics };
}

let addressCounter = 0;
async function client() {
  const { sessionId, token } = await sessions.create();
  return { sessionId, token, address: `10.9.${Math.floor(++addressCounter / 250)}.${addressCounter % 250}` };
}

type Client = Awaited<ReturnType<typeof client>>;

async function chat(app: Hono<ApiEnv>, who: Client, body: unknown) {
  const response = await app.request("/api/chat", {
    method: "POST",
    headers: { authorization: `Bearer ${who.token}`, "content-type": "application/json", "x-real-ip": who.address },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as { error?: { code: string; message: string }; streamId?: string },
  };
}

const tokensLeft = async (scope: string, id: string, intervalMs: number, burst: number) => {
  const tat = Number((await redis.get(keys.rate(scope, id))) ?? 0);
  return burst - Math.max(0, Math.ceil((tat - Date.now()) / intervalMs - 0.01));
};

describe("POST /api/chat: its limits in one Redis call, in the same order and with the same charges", () => {
  it("202: the turn is written with its slots, and the stream dispatched", async () => {
    const { app } = gateway();
    const who = await client();
    const reply = await chat(app, who, { message: "hello" });
    expect(reply.status).toBe(202);
    const meta = await streams.meta(reply.body.streamId!);
    expect(meta).toMatchObject({ status: "queued", sessionId: who.sessionId });
    expect(meta?.slots).toEqual({ session: keys.sessionSlots(who.sessionId), address: keys.addressSlots(who.address) });
    expect(dispatched).toContain(reply.body.streamId);
    expect(await tokensLeft("session", who.sessionId, 60_000, SESSION_BURST)).toBe(SESSION_BURST - 1);
    expect(await tokensLeft("chars", who.address, 60_000, CHARS_BURST)).toBe(CHARS_BURST - "hello".length);
  });

  it("the session's rate: refused first (429 rate_limited, Retry-After), the characters and slots untouched", async () => {
    const { app, metrics } = gateway();
    const who = await client();
    const charsKey = keys.rate("chars", who.address);
    // Spend the burst on malformed requests: each is charged, as any authenticated call, and answered 400.
    for (let i = 0; i < SESSION_BURST; i++) expect((await chat(app, who, "{not json")).status).toBe(400);
    const refused = await chat(app, who, { message: "hello" });
    expect(refused.status).toBe(429);
    expect(refused.body.error?.code).toBe("rate_limited");
    expect(refused.body.error?.message).toBe("this session is over its request rate");
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    // Over the rate, a malformed request is refused by the rate too (as when the rate came before the body).
    expect((await chat(app, who, "{not json")).status).toBe(429);
    expect(await redis.exists(charsKey)).toBe(0);
    expect(await redis.zcard(keys.sessionSlots(who.sessionId))).toBe(0);
    const counted = (await metrics.limitRefusals.get()).values.find((v) => v.labels.limit === "session_rate");
    expect(counted?.value).toBe(2);
  });

  it("another session's conversation: 404 after the rate is charged, before the characters", async () => {
    const { app } = gateway();
    const owner = await client();
    const other = await client();
    const mine = await chat(app, owner, { message: "mine" });
    const conversationId = (await streams.meta(mine.body.streamId!))?.conversationId;
    const reply = await chat(app, { ...other, address: owner.address }, { message: "theirs?", conversationId });
    expect(reply.status).toBe(404);
    expect(reply.body.error?.code).toBe("not_found");
    expect(await tokensLeft("session", other.sessionId, 60_000, SESSION_BURST)).toBe(SESSION_BURST - 1);
    expect(await tokensLeft("chars", owner.address, 60_000, CHARS_BURST)).toBe(CHARS_BURST - "mine".length);
  });

  it("the address's characters: 429 rate_limited with its own message; no slot taken, nothing written", async () => {
    const { app, metrics } = gateway();
    const who = await client();
    const reply = await chat(app, who, { message: "x".repeat(CHARS_BURST + 1) });
    expect(reply.status).toBe(429);
    expect(reply.body.error).toEqual({ code: "rate_limited", message: "this address sent too much text; retry later" });
    expect(await redis.zcard(keys.sessionSlots(who.sessionId))).toBe(0);
    expect(await redis.zcard(keys.sessionConversations(who.sessionId))).toBe(0);
    const counted = (await metrics.limitRefusals.get()).values.find((v) => v.labels.limit === "message_chars");
    expect(counted?.value).toBe(1);
  });

  it("the slots: 429 too_many_streams per session, then per address; the characters charged, nothing written", async () => {
    const { app, metrics } = gateway();
    const who = await client();
    for (let i = 0; i < CAPS.perSession; i++) expect((await chat(app, who, { message: "a" })).status).toBe(202);
    const session = await chat(app, who, { message: "b" });
    expect(session.status).toBe(429);
    expect(session.body.error?.code).toBe("too_many_streams");
    expect(session.body.error?.message).toContain("this session already has 2 answers running");
    expect(session.retryAfter).toBe("1");
    expect(await tokensLeft("chars", who.address, 60_000, CHARS_BURST)).toBe(CHARS_BURST - 3);
    expect(await redis.zcard(keys.sessionConversations(who.sessionId))).toBe(CAPS.perSession);

    const second = { ...(await client()), address: who.address };
    expect((await chat(app, second, { message: "c" })).status).toBe(202);
    const address = await chat(app, second, { message: "d" });
    expect(address.status).toBe(429);
    expect(address.body.error?.message).toContain("this address already has 3 answers running");
    const values = (await metrics.limitRefusals.get()).values;
    expect(values.find((v) => v.labels.limit === "streams_session")?.value).toBe(1);
    expect(values.find((v) => v.labels.limit === "streams_address")?.value).toBe(1);
  });

  it("a clientMessageId: the same request answered again without charging characters or slots", async () => {
    const { app } = gateway();
    const who = await client();
    const first = await chat(app, who, { message: "once", clientMessageId: "m-1" });
    expect(first.status).toBe(202);
    const again = await chat(app, who, { message: "once", clientMessageId: "m-1" });
    expect(again).toMatchObject({ status: 202, body: first.body });
    expect(await tokensLeft("session", who.sessionId, 60_000, SESSION_BURST)).toBe(SESSION_BURST - 2);
    expect(await tokensLeft("chars", who.address, 60_000, CHARS_BURST)).toBe(CHARS_BURST - "once".length);
    expect(await redis.zcard(keys.sessionSlots(who.sessionId))).toBe(1);
    const conflict = await chat(app, who, { message: "other", clientMessageId: "m-1" });
    expect(conflict.status).toBe(409);
  });
});
