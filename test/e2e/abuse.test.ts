import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { keys, registrationMac, SIGNATURE_HEADER, signRequest } from "@chatgrid/broker";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { type ClientStream, expectExactAnswers } from "../support/streams";
import { waitFor } from "../support/wait";

/**
 * The attacks of docs/security.md performed against a real 2+2 cluster through nginx: every limit answers with its
 * code, frees what it holds, and costs the other users nothing. Each test uses its own client addresses
 * (127.0.N.x), so one test's buckets never limit another's.
 */
const LIMITS = {
  STREAMS_PER_SESSION: "3",
  STREAMS_PER_ADDRESS: "5",
  SESSION_RATE_LIMIT: "8",
  SESSION_RATE_BURST: "8",
  SESSION_CREATE_RATE_LIMIT: "6",
  SESSION_CREATE_RATE_BURST: "6",
  MESSAGE_CHARS_PER_ADDRESS: "1000",
  MESSAGE_CHARS_BURST: "64000",
};
/** Long enough to still run while a test takes its next steps (tokens at TEST_ENV's 50/s). */
const LONG = "[demo:tokens=400] a long answer";

let cluster: TestCluster;
let redis: Redis;

beforeAll(async () => {
  cluster = await TestCluster.start({ gateways: 2, aiNodes: 2, nginx: true, env: LIMITS });
  redis = new Redis(cluster.redisUrl, { password: cluster.runner.redisPassword, lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const address = (n: number, host = 1) => `127.0.${n}.${host}`;

async function sessionAt(n: number, host = 1): Promise<ChatClient> {
  const client = new ChatClient(cluster.entryUrl, address(n, host));
  await client.createSession();
  return client;
}

async function metric(url: string, line: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(line.exec(text)?.[1] ?? 0);
}

/** Opens a socket from `localAddress`, says hello without a token: 101 when welcomed, else the close code. */
async function helloWithoutToken(localAddress: string): Promise<number> {
  const ws = new WebSocket(`${cluster.entryUrl.replace(/^http/, "ws")}/ws/chat`, { localAddress });
  ws.on("error", () => undefined);
  const outcome = new Promise<number>((resolve) => {
    ws.on("message", (data) => {
      if ((JSON.parse(data.toString()) as { type: string }).type === "welcome") resolve(101);
    });
    ws.on("close", (code) => resolve(code));
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
  });
  ws.on("open", () => ws.send(JSON.stringify({ type: "hello" })));
  const code = await outcome;
  ws.terminate();
  return code;
}

const gatewayMetricsUrl = (index: number) => {
  const gateway = cluster.runner.topology.gateways[index]!;
  return `http://${gateway.host}:${gateway.metricsPort}`;
};

describe("concurrent answers are capped per session and per address, across gateways", () => {
  it("a session's answer past STREAMS_PER_SESSION is refused with 429 too_many_streams on every gateway; done frees a slot", async () => {
    const client = await sessionAt(10);
    await client.connect();
    const running = [];
    for (let i = 0; i < 3; i++) running.push(await client.chat(`${LONG} ${i}`));
    const refused = await client.request("POST", "/api/chat", { message: "one more" });
    expect(refused.status).toBe(429);
    expect(refused.body.error?.code).toBe("too_many_streams");
    expect(refused.headers.get("retry-after")).toBe("1");
    // Straight to the other gateway (the count is in Redis, not in one gateway's memory).
    const direct = new ChatClient(cluster.gatewayUrl(1));
    direct.token = client.token;
    expect((await direct.request("POST", "/api/chat", { message: "elsewhere" })).body.error?.code).toBe(
      "too_many_streams",
    );
    // Cancel one: its done frees the slot, and the next answer is accepted.
    const cancelled = await client.request("POST", "/api/cancel", { streamId: running[0]!.streamId });
    expect(cancelled.body).toMatchObject({ cancelled: true });
    expect((await client.done(running[0]!.streamId)).done?.finishReason).toBe("cancelled");
    await waitFor("the slot to be free", async () => (await redis.zcard(keys.sessionSlots(client.sessionId!))) === 2);
    expect((await client.request("POST", "/api/chat", { message: "now there is room" })).status).toBe(202);
    client.close();
  });

  it("the sessions of one address together get at most STREAMS_PER_ADDRESS; another address is not affected", async () => {
    const first = await sessionAt(11);
    const second = await sessionAt(11);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await first.request("POST", "/api/chat", { message: LONG })).status);
    const last = [];
    for (let i = 0; i < 3; i++) last.push(await second.request("POST", "/api/chat", { message: LONG }));
    statuses.push(...last.map((r) => r.status));
    expect(statuses).toEqual([202, 202, 202, 202, 202, 429]);
    expect(last[2]!.body.error?.code).toBe("too_many_streams");
    expect(last[2]!.body.error?.message).toContain("address");
    const elsewhere = await sessionAt(12);
    expect((await elsewhere.request("POST", "/api/chat", { message: "hi" })).status).toBe(202);
    expect(
      (await metric(gatewayMetricsUrl(0), /^chatgrid_limit_refusals_total\{limit="streams_address"\} (\d+)/m)) +
        (await metric(gatewayMetricsUrl(1), /^chatgrid_limit_refusals_total\{limit="streams_address"\} (\d+)/m)),
    ).toBeGreaterThanOrEqual(1);
  });
});

describe("who is an address", () => {
  it("an X-Real-IP a client sends itself is overwritten by nginx: spoofing it does not buy fresh buckets", async () => {
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const client = new ChatClient(cluster.entryUrl, address(13));
      const spoof = { "x-real-ip": `198.51.100.${i + 1}`, "x-forwarded-for": `198.51.100.${i + 1}` };
      statuses.push((await client.request("POST", "/api/sessions", undefined, spoof)).status);
    }
    // SESSION_CREATE_RATE_BURST is 6 for the one real address, whatever the headers say.
    expect(statuses).toEqual([201, 201, 201, 201, 201, 201, 429]);
  });

  it("an address's message characters come out of one budget (MESSAGE_CHARS_BURST), then 429", async () => {
    const client = await sessionAt(14);
    const long = (n: number) => `[demo:tokens=2] ${n} ${"x".repeat(31_000)}`;
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await client.request("POST", "/api/chat", { message: long(i) }));
    expect(statuses.map((r) => r.status)).toEqual([202, 202, 429]);
    expect(statuses[2]!.body.error).toEqual({
      code: "rate_limited",
      message: "this address sent too much text; retry later",
    });
    expect(Number(statuses[2]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // A short message still fits in what is left.
    expect((await client.request("POST", "/api/chat", { message: "[demo:tokens=2] hi" })).status).toBe(202);
  });
});

describe("rate limits", () => {
  it("a session over its rate can still cancel its own answers", async () => {
    const client = await sessionAt(20);
    await client.connect();
    const accepted = await client.chat(LONG);
    let limited = 0;
    for (let i = 0; i < 12 && limited === 0; i++) {
      if ((await client.request("GET", "/api/conversations")).status === 429) limited++;
    }
    expect(limited).toBe(1);
    expect((await client.request("GET", "/api/conversations")).body.error?.code).toBe("rate_limited");
    const cancel = await client.request("POST", "/api/cancel", { streamId: accepted.streamId });
    expect(cancel.status).toBe(200);
    expect(cancel.body).toEqual({ streamId: accepted.streamId, cancelled: true });
    expect((await client.done(accepted.streamId)).done?.finishReason).toBe("cancelled");
    client.close();
  });

  it("new sessions over REST are limited per address (the burst, then 429 with Retry-After)", async () => {
    const client = new ChatClient(cluster.entryUrl, address(21));
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await client.request("POST", "/api/sessions")).status);
    expect(statuses.slice(0, 6)).toEqual([201, 201, 201, 201, 201, 201]);
    expect(statuses.slice(6)).toEqual([429, 429]);
    const refused = await client.request("POST", "/api/sessions");
    expect(refused.body.error?.code).toBe("rate_limited");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Another address still gets sessions.
    expect((await new ChatClient(cluster.entryUrl, address(22)).request("POST", "/api/sessions")).status).toBe(201);
  });
});

describe("idempotency", () => {
  it("reusing a clientMessageId with another message or for another conversation is refused with 409", async () => {
    const client = await sessionAt(30);
    const first = await client.chat("hello", { clientMessageId: "m-1" });
    // The same request again: the same answer, nothing new started.
    const again = await client.request("POST", "/api/chat", { message: "hello", clientMessageId: "m-1" });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first);
    const otherBody = await client.request("POST", "/api/chat", { message: "something else", clientMessageId: "m-1" });
    expect(otherBody.status).toBe(409);
    expect(otherBody.body.error?.code).toBe("idempotency_conflict");
    const otherConversation = await client.request("POST", "/api/chat", {
      message: "hello",
      conversationId: first.conversationId,
      clientMessageId: "m-1",
    });
    expect(otherConversation.status).toBe(409);
    expect(otherConversation.body.error?.code).toBe("idempotency_conflict");
    // Only the first request wrote anything.
    const history = await client.history(first.conversationId);
    expect(history.messages.filter((m) => m.role === "user").map((m) => m.content)).toEqual(["hello"]);
  });
});

describe("the internal surface: only holders of the cluster secret act as nodes", () => {
  let evil: Server;
  const calls: string[] = [];

  beforeAll(async () => {
    evil = createServer((req: IncomingMessage, res) => {
      calls.push(`${req.method} ${req.url}`);
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ streamId: "x", node: "evil", status: "claimed" }));
    });
    evil.listen(0, "127.0.0.1");
    await once(evil, "listening");
  });
  afterAll(() => {
    evil?.close();
  });

  it("an AI node written into Redis without the secret is ignored, counted, and never sent a stream", async () => {
    const url = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    const expiry = Date.now() + 10 * 60_000;
    await redis.zadd(keys.aiNodes(), expiry, JSON.stringify({ name: "evil", url }));
    await redis.zadd(
      keys.aiNodes(),
      expiry,
      JSON.stringify({ name: "evil2", url, mac: registrationMac("x".repeat(32), "evil2", url) }),
    );
    await waitFor("both gateways to see and refuse the forged members", async () => {
      const counts = await Promise.all(
        [0, 1].map((i) => metric(gatewayMetricsUrl(i), /^chatgrid_ai_registrations_refused (\d+)/m)),
      );
      return counts.every((count) => count === 2);
    });
    const client = await sessionAt(40);
    await client.connect();
    const streams: ClientStream[] = [];
    for (let i = 0; i < 3; i++) streams.push({ client, ...(await client.chat(`[demo:tokens=5] hi ${i}`)) });
    await expectExactAnswers(streams);
    expect(calls).toEqual([]);
    await redis.del(keys.aiNodes());
    client.close();
  });

  it("an AI node refuses a dispatch without a valid signature (401, counted)", async () => {
    const ai = cluster.runner.topology.aiNodes[0]!;
    const body = JSON.stringify({ streamId: "st_forged", attempt: 1 });
    const post = (headers: Record<string, string>) =>
      fetch(`${ai.url}/v1/streams`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
    const unsigned = await post({});
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const wrongSecret = await post({ [SIGNATURE_HEADER]: signRequest("w".repeat(32), "POST", "/v1/streams", body) });
    expect(wrongSecret.status).toBe(401);
    expect(await metric(ai.url, /^chatgrid_ai_unauthorized_dispatches_total\{reason="missing"\} (\d+)/m)).toBe(1);
    expect(await metric(ai.url, /^chatgrid_ai_unauthorized_dispatches_total\{reason="bad_signature"\} (\d+)/m)).toBe(1);
  });

  it("Redis refuses a client without the password", async () => {
    // A raw connection: what anyone who reaches the port can send, without a client library's handshake.
    const port = Number(new URL(cluster.redisUrl).port);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write(`ZADD ${keys.aiNodes()} 9999999999999 forged\r\nGET ${keys.aiNodes()}\r\n`);
    let reply = "";
    await new Promise<void>((resolve) => {
      socket.on("data", (data: Buffer) => {
        reply += data.toString();
        if (reply.split("\r\n").filter(Boolean).length >= 2) resolve();
      });
    });
    socket.destroy();
    expect(reply.split("\r\n").filter(Boolean)).toEqual([
      expect.stringMatching(/^-NOAUTH/),
      expect.stringMatching(/^-NOAUTH/),
    ]);
    expect(await redis.zscore(keys.aiNodes(), "forged")).toBeNull();
  });
});

describe("one address attacking does not cost the other users anything", () => {
  it("while one address floods sessions, chats and sockets, other users' streams arrive whole", async () => {
    const victims = await Promise.all([50, 51, 52, 53].map((n) => sessionAt(n)));
    await Promise.all(victims.map((v) => v.connect()));
    const attackUntil = Date.now() + 3000;
    const attacker = async (host: number) => {
      const results: number[] = [];
      while (Date.now() < attackUntil) {
        const client = new ChatClient(cluster.entryUrl, address(60, host));
        const session = await client.request("POST", "/api/sessions");
        results.push(session.status);
        // Sockets that ask for new sessions too (refused past the address's session budget with 4429).
        results.push(await helloWithoutToken(address(60, host)));
        if (session.status !== 201) continue;
        client.token = session.body.token as string;
        for (let i = 0; i < 4; i++) results.push((await client.request("POST", "/api/chat", { message: LONG })).status);
      }
      return results;
    };
    const streams: ClientStream[] = [];
    const attack = Promise.all([1, 2, 3].map(attacker));
    for (const victim of victims) {
      for (let i = 0; i < 2; i++)
        streams.push({ client: victim, ...(await victim.chat(`[demo:tokens=60] victim ${i}`)) });
    }
    const statuses = (await attack).flat();
    await expectExactAnswers(streams);
    // The attack was refused by its limits, not by luck.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s >= 500 && s < 1000)).toEqual([]);
    expect(statuses.filter((s) => s === 4429).length).toBeGreaterThan(0);
    for (const victim of victims) victim.close();
  });
});

describe("slots of streams whose AI node died", () => {
  it("a stream taken over after its AI node was SIGKILLed still ends, and its done frees the slot", async () => {
    const client = await sessionAt(70);
    await client.connect();
    const streams: ClientStream[] = [];
    for (let i = 0; i < 3; i++) streams.push({ client, ...(await client.chat(`[demo:tokens=150] takeover ${i}`)) });
    expect((await client.request("POST", "/api/chat", { message: "full" })).body.error?.code).toBe("too_many_streams");
    const first = streams[0]!.streamId;
    const start =
      client.view(first).start ??
      (await client
        .next((f) => f.type === "start" && f.streamId === first)
        .then((f) => (f.type === "start" ? f : undefined)));
    const victim = cluster.ai.find((node) => node.name === start?.aiNode);
    if (!victim) throw new Error(`no AI node named in the start frame (${JSON.stringify(start)})`);
    await victim.kill("SIGKILL");
    await expectExactAnswers(streams);
    expect(await redis.zcard(keys.sessionSlots(client.sessionId!))).toBe(0);
    expect((await client.request("POST", "/api/chat", { message: "room again" })).status).toBe(202);
    client.close();
  });
});
