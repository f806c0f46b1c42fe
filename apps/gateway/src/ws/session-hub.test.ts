import {
  type ChannelDropReason,
  ChannelSubscriber,
  ConversationStore,
  channels,
  connectRedis,
  createLogger,
  createRedis,
  newId,
  StreamStore,
} from "@chatgrid/broker";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../../../../packages/broker/src/test-redis";
import { createGatewayMetrics } from "../metrics";
import { ClientConnection, type ConnectionCounters, type Transport } from "./client-connection";
import { channelDropReporter, SessionHub } from "./session-hub";

let server: TestRedis;
let redis: Redis;
let subRedis: Redis;
let streams: StreamStore;
let conversations: ConversationStore;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "hub-test");
  subRedis = createRedis(server.url, "hub-test-sub", { autoResubscribe: false });
  for (const r of [redis, subRedis]) r.on("error", () => undefined);
  await Promise.all([connectRedis(redis, 10_000), connectRedis(subRedis, 10_000)]);
  streams = new StreamStore(redis, { dispatchDeadlineMs: 10_000 });
  conversations = new ConversationStore(redis, streams);
});

afterAll(async () => {
  redis?.disconnect();
  subRedis?.disconnect();
  await server?.stop();
});

/** A socket that records what it was sent, and lets a test wait for a frame. */
class RecordingTransport implements Transport {
  readonly sent: string[] = [];
  bufferedAmount = 0;
  open = true;
  private waiters: { test: (frame: string) => boolean; resolve: () => void }[] = [];

  send(frame: string): void {
    this.sent.push(frame);
    for (const waiter of [...this.waiters]) {
      if (!waiter.test(frame)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  close(): void {
    this.open = false;
  }

  until(test: (frame: string) => boolean): Promise<void> {
    if (this.sent.some(test)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }
}

const counters: ConnectionCounters = {
  delivered: () => undefined,
  replayed: () => undefined,
  gapFilled: () => undefined,
  snapshot: () => undefined,
  slowConsumer: () => undefined,
  historyFailed: () => undefined,
};

async function setup() {
  const metrics = createGatewayMetrics();
  const drops: ChannelDropReason[] = [];
  const report = channelDropReporter(metrics, createLogger("test", "silent"));
  const hub = new SessionHub({
    dropped: (reason, channel) => {
      drops.push(reason);
      report(reason, channel);
    },
  });
  const subscriber = new ChannelSubscriber(
    subRedis,
    (channel, message) => hub.onChannelMessage(channel, message),
    createLogger("test", "silent"),
  );
  hub.attach(subscriber);
  const sessionId = newId("sess");
  const turn = await conversations.beginTurn(sessionId, "hello");
  expect((await streams.claim(turn.streamId, 1, "ai-1")).status).toBe("claimed");
  const transport = new RecordingTransport();
  const connection = new ClientConnection(sessionId, transport, streams, 1 << 20, counters);
  await hub.join(connection);
  return { metrics, drops, hub, sessionId, turn, transport, connection };
}

describe("SessionHub forwards only well-formed events of the stream a channel message names", () => {
  it("raw PUBLISHes of hostile payloads are dropped and counted by reason; real events pass, byte for byte", async () => {
    const { metrics, drops, sessionId, turn, transport } = await setup();
    const s = turn.streamId;
    const channel = channels.session(sessionId);
    const start = await streams.append(s, 1, sessionId, 0, {
      kind: "start",
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      aiNode: "ai-1",
    });
    expect(start.ok).toBe(true);
    await transport.until((f) => f.includes('"type":"start"'));

    const hostile: [string, ChannelDropReason][] = [
      ["garbage without newlines", "header"],
      [`${s}\nnot-a-seq\n{}`, "header"],
      [`${s}\n1\nnot json at all`, "json"],
      [`${s}\n1\n<script>alert(1)</script>`, "json"],
      [`${s}\n1\n{"type":"welcome","sessionId":"sess_evil","token":"stolen","node":"gateway-1"}`, "type"],
      [`${s}\n1\n{"type":"error","code":"phish","message":"log in at http://evil.example"}`, "type"],
      [`${s}\n1\n{"type":"chunk","streamId":"st_other","seq":1,"delta":"injected"}`, "stream"],
      [`${s}\n1\n{"type":"chunk","streamId":"${s}","seq":7,"delta":"injected"}`, "seq"],
      [`${s}\n1\n{"type":"chunk","streamId":"${s}","seq":1}`, "fields"],
      [`${s}\n1\n{"type":"done","streamId":"${s}","seq":1,"finishReason":"hacked"}`, "fields"],
    ];
    for (const [payload] of hostile) await redis.publish(channel, payload);
    const chunk = await streams.append(s, 1, sessionId, 1, { kind: "chunk", delta: "real text" });
    const done = await streams.append(s, 1, sessionId, 2, { kind: "done", finishReason: "stop" });
    expect(chunk.ok && done.ok).toBe(true);
    // One channel delivers in order: once done arrived, every hostile payload before it was handled.
    await transport.until((f) => f.includes('"type":"done"'));

    expect(drops).toEqual(hostile.map(([, reason]) => reason));
    const stored = await streams.readAfter(s, -1, 10);
    expect(transport.sent).toEqual(stored.map((e) => e.frame));
    expect(transport.sent.join("\n")).not.toMatch(/injected|evil|stolen|phish|hacked|script/);
    const counted = (await metrics.channelMessagesDropped.get()).values;
    const byReason = Object.fromEntries(counted.map((v) => [v.labels.reason, v.value]));
    expect(byReason).toEqual({ header: 2, json: 2, type: 2, stream: 1, seq: 1, fields: 2 });
  });

  it("a hostile frame does not move the stream's cursor: the real event with that seq still arrives", async () => {
    const { sessionId, turn, transport } = await setup();
    const s = turn.streamId;
    await streams.append(s, 1, sessionId, 0, {
      kind: "start",
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      aiNode: "ai-1",
    });
    // Claims seq 1 with a header that names the stream but a frame of another: dropped, so seq 1 stays open.
    await redis.publish(
      channels.session(sessionId),
      `${s}\n1\n{"type":"chunk","streamId":"st_other","seq":1,"delta":"x"}`,
    );
    await streams.append(s, 1, sessionId, 1, { kind: "chunk", delta: "genuine" });
    await transport.until((f) => f.includes("genuine"));
    expect(transport.sent.map((f) => (JSON.parse(f) as { seq: number }).seq)).toEqual([0, 1]);
  });
});

describe("SessionHub socket counts", () => {
  it("counts the sockets of a session while they join and leave", async () => {
    const { hub, sessionId, connection } = await setup();
    expect(hub.socketCount(sessionId)).toBe(1);
    const second = new ClientConnection(sessionId, new RecordingTransport(), streams, 1 << 20, counters);
    await hub.join(second);
    expect(hub.socketCount(sessionId)).toBe(2);
    hub.leave(connection);
    hub.leave(connection);
    expect(hub.socketCount(sessionId)).toBe(1);
    hub.leave(second);
    expect(hub.socketCount(sessionId)).toBe(0);
    expect(hub.socketCount(newId("sess"))).toBe(0);
  });
});

describe("channelDropReporter", () => {
  it("counts every drop and logs at most once per interval", () => {
    const metrics = createGatewayMetrics();
    const lines: unknown[] = [];
    const log = { warn: (fields: unknown) => lines.push(fields) } as unknown as ReturnType<typeof createLogger>;
    let now = 0;
    const report = channelDropReporter(metrics, log, () => now);
    for (let i = 0; i < 100; i++) report("json", "cg:ch:sess_a");
    now = 10_001;
    report("type", "cg:ch:sess_a");
    expect(lines).toEqual([
      { reason: "json", channel: "cg:ch:sess_a", dropped: 1 },
      { reason: "type", channel: "cg:ch:sess_a", dropped: 100 },
    ]);
  });
});
