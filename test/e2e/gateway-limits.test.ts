import { once } from "node:events";
import { channels, encodeChannelMessage } from "@chatgrid/broker";
import { HealthResponseSchema, InternalHealthResponseSchema } from "@chatgrid/protocol";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { type ClientStream, expectExactAnswers } from "../support/streams";
import { waitFor } from "../support/wait";

/**
 * The gateway's limits and checks (docs/protocol.md "WebSocket", "History pages", "Health") attacked through nginx
 * on a real 2-gateway cluster. Every client binds its own source address (127.0.N.x), so one test's per-address
 * buckets never limit another's, and nginx's ip_hash keeps an address on one gateway.
 */
const ENV = {
  HELLO_TIMEOUT_MS: "1500",
  SESSION_CREATE_RATE_LIMIT: "1",
  SESSION_CREATE_RATE_WINDOW_MS: "60000",
  SESSION_CREATE_RATE_BURST: "5",
  WS_SOCKETS_PER_SESSION: "16",
  WS_RESUMES_PER_SECOND: "50",
};
const RESUME_BURST = 256;

let cluster: TestCluster;
let redis: Redis;

beforeAll(async () => {
  cluster = await TestCluster.start({ gateways: 2, aiNodes: 1, nginx: true, env: ENV });
  redis = new Redis(cluster.redisUrl, { ...cluster.redisOptions, lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const address = (n: number, host = 1) => `127.0.${n}.${host}`;

/** A metric summed over both gateways (from their internal ports). */
async function metric(pattern: RegExp): Promise<number> {
  let total = 0;
  for (const gateway of cluster.runner.topology.gateways) {
    const text = await (await fetch(`http://${gateway.host}:${gateway.metricsPort}/metrics`)).text();
    for (const match of text.matchAll(new RegExp(pattern.source, "gm"))) total += Number(match[1]);
  }
  return total;
}
const refusals = (limit: string) => metric(new RegExp(`^chatgrid_limit_refusals_total\\{limit="${limit}"\\} (\\d+)`));
const socketsOpen = () => metric(/^chatgrid_sockets_open (\d+)/);

type Frame = Record<string, unknown>;

/** A socket through nginx from `from`, speaking raw frames; records what it receives and how it closes. */
class RawSocket {
  readonly received: Frame[] = [];
  readonly ws: WebSocket;
  readonly closed: Promise<number>;
  private waiters: { test: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];

  constructor(from: string) {
    this.ws = new WebSocket(`${cluster.entryUrl.replace(/^http/, "ws")}/ws/chat`, { localAddress: from });
    this.ws.on("error", () => undefined);
    this.closed = new Promise((resolve) => this.ws.on("close", (code) => resolve(code)));
    this.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.received.push(frame);
      for (const waiter of [...this.waiters]) {
        if (!waiter.test(frame)) continue;
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(frame);
      }
    });
  }

  async open(): Promise<this> {
    await once(this.ws, "open");
    return this;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** The next frame that passes `test`, or the close code if the socket closes first. */
  next(test: (f: Frame) => boolean): Promise<Frame | number> {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return this.nextNew(test);
  }

  /** Resolves once `count` frames that pass `test` have come in all, or with the close code if it closes first. */
  nth(test: (f: Frame) => boolean, count: number): Promise<Frame | number> {
    const seen = this.received.filter(test);
    if (seen.length >= count) return Promise.resolve(seen[count - 1]!);
    let left = count - seen.length;
    return this.nextNew((f) => test(f) && --left === 0);
  }

  /** The next frame from now on that passes `test`, or the close code. */
  private nextNew(test: (f: Frame) => boolean): Promise<Frame | number> {
    return Promise.race([new Promise<Frame>((resolve) => this.waiters.push({ test, resolve })), this.closed]);
  }

  /** Sends hello; resolves with welcome, or with the close code when it is refused. */
  async hello(token?: string): Promise<Frame | number> {
    this.send({ type: "hello", ...(token ? { token } : {}) });
    return this.next((f) => f.type === "welcome");
  }
}

async function socketAt(from: string): Promise<RawSocket> {
  return new RawSocket(from).open();
}

describe("chatgrid_sockets_open", () => {
  it("returns to 0 on both gateways after sockets closed before and after hello in every way", async () => {
    await waitFor("no sockets open", async () => (await socketsOpen()) === 0);
    const session = new ChatClient(cluster.entryUrl, address(10));
    await session.createSession();
    const endings: [string, (s: RawSocket) => Promise<void>, number | undefined][] = [
      ["a first frame that is not JSON", async (s) => s.send("not json"), 4400],
      ["a binary first frame", async (s) => s.send(Buffer.from([1, 2, 3])), 4400],
      ["a first frame that is not hello", async (s) => s.send({ type: "ping" }), 4400],
      ["an unknown token", async (s) => s.send({ type: "hello", token: "A".repeat(43) }), 4401],
      ["no hello in time", async () => undefined, 4408],
      ["the client goes before hello", async (s) => s.ws.terminate(), undefined],
      [
        "the client goes after hello",
        async (s) => {
          expect(await s.hello(session.token)).toMatchObject({ type: "welcome" });
          s.ws.terminate();
        },
        undefined,
      ],
      [
        "five bad frames after hello",
        async (s) => {
          expect(await s.hello(session.token)).toMatchObject({ type: "welcome" });
          for (let i = 0; i < 5; i++) s.send("{");
        },
        4400,
      ],
      [
        "a clean close after hello",
        async (s) => {
          expect(await s.hello(session.token)).toMatchObject({ type: "welcome" });
          s.ws.close(1000);
        },
        1000,
      ],
    ];
    const sockets = await Promise.all(endings.map((_, i) => socketAt(address(10, 10 + i))));
    expect(await socketsOpen()).toBe(endings.length);
    await Promise.all(endings.map(([, end], i) => end(sockets[i]!)));
    const codes = await Promise.all(sockets.map((s) => s.closed));
    endings.forEach(([name, , code], i) => {
      if (code !== undefined) expect(codes[i], name).toBe(code);
    });
    // The gateways see the closes a moment after the clients do.
    await waitFor("every socket accounted for", async () => (await socketsOpen()) === 0);
  });
});

describe("per-session socket limit (WS_SOCKETS_PER_SESSION = 16)", () => {
  it("the 17th socket of a session gets error too_many_connections and 4430; the 16 keep working", async () => {
    const from = address(20);
    const owner = new ChatClient(cluster.entryUrl, from);
    await owner.createSession();
    const refusedBefore = await refusals("sockets_session");
    const open = await Promise.all(Array.from({ length: 16 }, () => socketAt(from)));
    for (const s of open) expect(await s.hello(owner.token)).toMatchObject({ type: "welcome" });
    const extra = await socketAt(from);
    expect(await extra.hello(owner.token)).toBe(4430);
    expect(extra.received).toEqual([{ type: "error", code: "too_many_connections", message: expect.any(String) }]);
    expect(await refusals("sockets_session")).toBe(refusedBefore + 1);
    // The others still work: each answers a ping, and a chat reaches every one of them.
    for (const s of open) {
      s.send({ type: "ping" });
      expect(await s.next((f) => f.type === "pong")).toEqual({ type: "pong" });
    }
    const accepted = await owner.chat("[demo:tokens=3] to every socket");
    for (const s of open) {
      expect(await s.next((f) => f.type === "done" && f.streamId === accepted.streamId)).toMatchObject({
        finishReason: "stop",
      });
    }
    // A freed place is taken again, once the gateway has seen the close.
    open[0]!.ws.close(1000);
    await open[0]!.closed;
    await waitFor("the gateway to see the close", async () => (await socketsOpen()) === 15);
    const again = await socketAt(from);
    expect(await again.hello(owner.token)).toMatchObject({ type: "welcome" });
    for (const s of [again, ...open]) s.ws.terminate();
    owner.close();
  });
});

describe("resume is charged per stream (WS_RESUMES_PER_SECOND = 50, burst 256)", () => {
  it("resume frames of 256 entries in a loop: closed with 4429 after about burst + rate entries, Redis reads bounded", async () => {
    const from = address(30);
    const victim = new ChatClient(cluster.entryUrl, address(31));
    await victim.createSession();
    await victim.connect();
    const victimStream: ClientStream = { client: victim, ...(await victim.chat("[demo:tokens=40] meanwhile")) };

    const attacker = await socketAt(from);
    expect(await attacker.hello()).toMatchObject({ type: "welcome" });
    const resumedBefore = await metric(/^chatgrid_resume_requests_total (\d+)/);
    const refusedBefore = await refusals("resume_rate");
    const hgetallBefore = await commandCalls("hgetall");
    const streams = Array.from({ length: RESUME_BURST }, (_, i) => ({ streamId: `st_attack${i}` }));
    const started = Date.now();
    let frames = 0;
    let closed: number | undefined;
    void attacker.closed.then((code) => {
      closed = code;
    });
    // The first frame fits the burst and is served in full (one stream_unknown per entry) before the flood; sent
    // together, a refused frame can close the socket before the accepted one is handled, and nothing is served.
    const unknown = (f: Frame) => f.type === "error" && f.code === "stream_unknown";
    attacker.send({ type: "resume", streams });
    frames++;
    expect(await attacker.nth(unknown, RESUME_BURST)).toMatchObject({ code: "stream_unknown" });
    while (closed === undefined && frames < 500) {
      attacker.send({ type: "resume", streams });
      frames++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await attacker.closed).toBe(4429);
    const seconds = (Date.now() - started) / 1000;
    const bound = RESUME_BURST + 50 * seconds;
    const resumed = (await metric(/^chatgrid_resume_requests_total (\d+)/)) - resumedBefore;
    expect(resumed).toBeGreaterThanOrEqual(RESUME_BURST); // the first frame was served
    expect(resumed).toBeLessThanOrEqual(bound);
    // Each resumed stream cost one meta read (HGETALL); the refused frames cost none.
    expect((await commandCalls("hgetall")) - hgetallBefore).toBeLessThanOrEqual(bound + 50);
    expect(attacker.received.filter(unknown).length).toBeLessThanOrEqual(bound);
    expect(await refusals("resume_rate")).toBe(refusedBefore + 1);
    // The user next door lost nothing.
    await expectExactAnswers([victimStream]);
    victim.close();
  });
});

/** Calls of one Redis command so far (INFO commandstats). */
async function commandCalls(command: string): Promise<number> {
  const info = await redis.info("commandstats");
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info)?.[1] ?? 0);
}

describe("a hello without a token is limited like POST /api/sessions (per address)", () => {
  it("after the burst, hellos without a token are refused with rate_limited and 4429; tokens and other addresses still work", async () => {
    const from = address(40);
    const refusedBefore = await refusals("session_create");
    // A flood: 30 hellos at once from one address (300 in 0.6 s were possible before).
    const sockets = await Promise.all(Array.from({ length: 30 }, () => socketAt(from)));
    const outcomes = await Promise.all(sockets.map((s) => s.hello()));
    const welcomed = outcomes.filter((o): o is Frame => typeof o === "object");
    const refused = sockets.filter((_, i) => outcomes[i] === 4429);
    // The burst of 5, and at most one more refilled (1 per minute) while the test runs.
    expect(welcomed.length).toBeGreaterThanOrEqual(5);
    expect(welcomed.length).toBeLessThanOrEqual(6);
    expect(refused).toHaveLength(30 - welcomed.length);
    for (const s of refused) {
      expect(s.received).toEqual([
        { type: "error", code: "rate_limited", message: expect.stringMatching(/new sessions.*retry in \d+ s/) },
      ]);
    }
    expect(await refusals("session_create")).toBe(refusedBefore + refused.length);
    // REST shares the bucket.
    expect((await new ChatClient(cluster.entryUrl, from).request("POST", "/api/sessions")).status).toBe(429);
    // A hello with a valid token from the same address still works, and is not charged.
    const withToken = await socketAt(from);
    expect(await withToken.hello(welcomed[0]!.token as string)).toMatchObject({
      type: "welcome",
      sessionId: welcomed[0]!.sessionId,
    });
    // Another address still gets new sessions.
    expect(await (await socketAt(address(41))).hello()).toMatchObject({ type: "welcome" });
    for (const s of [...sockets, withToken]) s.ws.terminate();
  });
});

describe("a gateway forwards only well-formed events of the stream a channel message names", () => {
  it("hostile PUBLISHes into a session's channel (with the cluster's Redis password) never reach the browser", async () => {
    const client = new ChatClient(cluster.entryUrl, address(50));
    await client.createSession();
    await client.connect();
    const droppedBefore = await metric(/^chatgrid_channel_messages_dropped_total\{reason="\w+"\} (\d+)/);
    const accepted = await client.chat("[demo:tokens=80] a stream under attack");
    await client.next((f) => f.type === "chunk" && f.streamId === accepted.streamId);
    const s = accepted.streamId;
    const channel = channels.session(client.sessionId!);
    const hostile = [
      "not a channel message",
      encodeChannelMessage(s, 900, "not json"),
      encodeChannelMessage(s, 900, '{"type":"welcome","sessionId":"sess_evil","token":"stolen","node":"x"}'),
      encodeChannelMessage(s, 900, '{"type":"error","code":"phish","message":"log in at http://evil.example"}'),
      encodeChannelMessage(s, 900, `{"type":"chunk","streamId":"st_other","seq":900,"delta":"injected"}`),
      encodeChannelMessage(s, 900, `{"type":"chunk","streamId":"${s}","seq":901,"delta":"injected"}`),
      encodeChannelMessage(s, 900, `{"type":"chunk","streamId":"${s}","seq":900}`),
      encodeChannelMessage(s, 900, `{"type":"done","streamId":"${s}","seq":900,"finishReason":"hacked"}`),
    ];
    // Each is received by exactly one gateway (the one holding the socket), before the stream's done is appended.
    for (const payload of hostile) expect(await redis.publish(channel, payload)).toBe(1);
    const view = await client.done(s);
    expect(view.done?.finishReason).toBe("stop");
    await expectExactAnswers([{ client, ...accepted }]);
    expect(JSON.stringify(client.frames)).not.toMatch(/injected|evil|stolen|phish|hacked/);
    expect(client.frames.some((f) => "seq" in f && f.seq >= 900)).toBe(false);
    expect((await metric(/^chatgrid_channel_messages_dropped_total\{reason="\w+"\} (\d+)/)) - droppedBefore).toBe(
      hostile.length,
    );
    client.close();
  });
});

describe("GET /api/health through nginx", () => {
  it("shows counts and no internal address; the internal port keeps the full view", async () => {
    const response = await new ChatClient(cluster.entryUrl, address(60)).request("GET", "/api/health");
    expect(response.status).toBe(200);
    const body = HealthResponseSchema.parse(response.body);
    expect(body).toMatchObject({ status: "ok", redis: "up" });
    expect(body.aiNodes.healthy).toBeGreaterThanOrEqual(1);
    const text = JSON.stringify(response.body);
    const ai = cluster.runner.topology.aiNodes[0]!;
    expect(text).not.toContain(ai.name);
    expect(text).not.toMatch(/https?:|127\.0\.0\.1|localhost/);
    const gateway = cluster.runner.topology.gateways.find((g) => g.name === body.node)!;
    const internal = InternalHealthResponseSchema.parse(
      await (await fetch(`http://${gateway.host}:${gateway.metricsPort}/health`)).json(),
    );
    expect(internal.aiNodes).toContainEqual(expect.objectContaining({ name: ai.name, healthy: true }));
    for (const node of internal.aiNodes) expect(node.url).toMatch(/^http:\/\//);
    // The public counts are the internal view's.
    expect(body.aiNodes).toEqual({
      healthy: internal.aiNodes.filter((n) => n.healthy).length,
      total: internal.aiNodes.length,
    });
  });
});

describe("GET /api/history pages through nginx", () => {
  it("a conversation read a page at a time is the whole conversation, in order", async () => {
    const client = new ChatClient(cluster.entryUrl, address(70));
    await client.createSession();
    await client.connect();
    let conversationId: string | undefined;
    for (let i = 0; i < 3; i++) {
      const accepted = await client.chat(`[demo:tokens=2] turn ${i}`, conversationId ? { conversationId } : {});
      conversationId = accepted.conversationId;
      await client.done(accepted.streamId);
    }
    const query = (extra: string) => `/api/history?conversationId=${conversationId}&limit=4${extra}`;
    const newest = await client.request("GET", query(""));
    expect(newest.status).toBe(200);
    const older = await client.request("GET", query(`&cursor=${newest.body.nextCursor as string}`));
    expect(older.body.nextCursor).toBeUndefined();
    const messages = [...(older.body.messages as Frame[]), ...(newest.body.messages as Frame[])];
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant", "user", "assistant"]);
    expect(messages.filter((m) => m.role === "user").map((m) => m.content)).toEqual([
      "[demo:tokens=2] turn 0",
      "[demo:tokens=2] turn 1",
      "[demo:tokens=2] turn 2",
    ]);
    const bad = await client.request("GET", query("&cursor=forged"));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ code: "bad_request", message: expect.stringMatching(/^cursor: /) });
    client.close();
  });
});
