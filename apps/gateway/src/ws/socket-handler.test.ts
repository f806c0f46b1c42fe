import { createLogger, type RateDecision, type StoredEvent, type StreamMeta } from "@chatgrid/broker";
import { CloseCode, ErrorCode, MAX_RESUME_STREAMS } from "@chatgrid/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createGatewayMetrics, type GatewayMetrics } from "../metrics";
import { type HubSubscriber, SessionHub } from "./session-hub";
import { SocketHandler, type SocketHandlerDeps, type SocketLike } from "./socket-handler";

/* ------------------------------------------------------------------------------------------------------------
 * Fakes
 * ---------------------------------------------------------------------------------------------------------- */

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

type Frame = Record<string, unknown>;

/**
 * A `ws` socket as the handler sees it. `close()` completes like a real close handshake: the server's close event
 * (onClose) follows on a later turn of the event loop. `drop()` is the client going away.
 */
class FakeSocket implements SocketLike {
  readyState = OPEN;
  bufferedAmount = 0;
  readonly sent: string[] = [];
  closeCode: number | undefined;
  handler: SocketHandler | undefined;
  private frameWaiters: { test: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private closeWaiters: ((code: number) => void)[] = [];

  send(data: string): void {
    if (this.readyState !== OPEN) throw new Error("send on a socket that is not open");
    this.sent.push(data);
    const frame = JSON.parse(data) as Frame;
    for (const waiter of [...this.frameWaiters]) {
      if (!waiter.test(frame)) continue;
      this.frameWaiters.splice(this.frameWaiters.indexOf(waiter), 1);
      waiter.resolve(frame);
    }
  }

  close(code = 1005): void {
    if (this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    setImmediate(() => this.finish(code));
  }

  drop(code = 1006): void {
    if (this.readyState === CLOSED) return;
    this.finish(code);
  }

  private finish(code: number): void {
    this.readyState = CLOSED;
    this.closeCode = code;
    this.handler?.onClose(code);
    for (const waiter of this.closeWaiters.splice(0)) waiter(code);
  }

  closed(): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  frames(): Frame[] {
    return this.sent.map((f) => JSON.parse(f) as Frame);
  }

  next(test: (f: Frame) => boolean): Promise<Frame> {
    const seen = this.frames().find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.frameWaiters.push({ test, resolve }));
  }

  /** The first frame of a type, or the close, whichever comes first. */
  async welcomeOrClose(): Promise<Frame | number> {
    return Promise.race([this.next((f) => f.type === "welcome"), this.closed()]);
  }
}

class FakeSubscriber implements HubSubscriber {
  readonly channels = new Set<string>();
  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
  }
  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
  }
  on(): this {
    return this;
  }
}

/** Sessions in memory; `resolve` can be held (to close a socket mid-hello) or made to fail (Redis away). */
class FakeSessions {
  readonly tokens = new Map<string, string>();
  created = 0;
  failing: Error | undefined;
  private held: (() => void)[] | undefined;

  add(token: string, sessionId: string): void {
    this.tokens.set(token, sessionId);
  }

  hold(): void {
    this.held = [];
  }

  release(): void {
    for (const go of this.held?.splice(0) ?? []) go();
    this.held = undefined;
  }

  async resolve(token: string): Promise<string | undefined> {
    if (this.held) await new Promise<void>((resolve) => this.held!.push(resolve));
    if (this.failing) throw this.failing;
    return this.tokens.get(token);
  }

  async create(): Promise<{ sessionId: string; token: string }> {
    if (this.failing) throw this.failing;
    this.created++;
    const session = { sessionId: `sess_new${this.created}`, token: `tok_new${this.created}` };
    this.tokens.set(session.token, session.sessionId);
    return session;
  }
}

/** The Redis reads a resume causes, counted: a meta read per entry, then history and snapshot reads. */
class FakeStreams {
  readonly owners = new Map<string, string>();
  metaReads = 0;
  historyReads = 0;
  snapshotReads = 0;
  failing: Error | undefined;

  get reads(): number {
    return this.metaReads + this.historyReads + this.snapshotReads;
  }

  async meta(streamId: string): Promise<StreamMeta | undefined> {
    this.metaReads++;
    if (this.failing) throw this.failing;
    const sessionId = this.owners.get(streamId);
    if (!sessionId) return undefined;
    return {
      streamId,
      sessionId,
      conversationId: "conv_1",
      messageId: "msg_1",
      userMessageId: "msg_0",
      status: "running",
      attempt: 1,
      seq: -1,
      textSeq: -1,
      node: "ai-1",
      finishReason: undefined,
      cancelRequested: false,
      createdAt: 0,
    };
  }

  async readAfter(): Promise<StoredEvent[]> {
    this.historyReads++;
    return [];
  }

  async snapshot(): Promise<undefined> {
    this.snapshotReads++;
    return undefined;
  }
}

class FakeLimiter {
  readonly calls: string[] = [];
  constructor(private allowance: number) {}
  async check(id: string): Promise<RateDecision> {
    this.calls.push(id);
    if (this.allowance-- > 0) return { allowed: true };
    return { allowed: false, retryAfterSeconds: 7 };
  }
}

interface Harness {
  deps: SocketHandlerDeps;
  metrics: GatewayMetrics;
  hub: SessionHub;
  sessions: FakeSessions;
  streams: FakeStreams;
  limiter: FakeLimiter;
  logged: { fields: unknown; message: string }[];
  open(address?: string): { socket: FakeSocket; handler: SocketHandler };
}

function harness(overrides: Partial<SocketHandlerDeps> = {}, allowance = 1_000): Harness {
  const metrics = createGatewayMetrics();
  const hub = new SessionHub();
  hub.attach(new FakeSubscriber());
  const sessions = new FakeSessions();
  sessions.add("tok_alice", "sess_alice");
  const streams = new FakeStreams();
  const limiter = new FakeLimiter(allowance);
  const logged: { fields: unknown; message: string }[] = [];
  const log = createLogger("test", "silent");
  log.warn = ((fields: unknown, message: string) => void logged.push({ fields, message })) as typeof log.warn;
  const deps: SocketHandlerDeps = {
    node: "gateway-test",
    sessions,
    streams,
    hub,
    metrics,
    log,
    events: { emit: () => undefined },
    sessionCreateLimiter: limiter,
    helloTimeoutMs: 10_000,
    sendBufferBytes: 1000,
    framesPerSecond: 1000,
    frameBurst: 1000,
    socketsPerSession: 16,
    resumesPerSecond: 50,
    ...overrides,
  };
  return {
    deps,
    metrics,
    hub,
    sessions,
    streams,
    limiter,
    logged,
    open(address = "203.0.113.7") {
      const socket = new FakeSocket();
      const handler = new SocketHandler(socket, deps, { address });
      socket.handler = handler;
      return { socket, handler };
    },
  };
}

async function gauge(metrics: GatewayMetrics, name: "socketsOpen" | "sessionsActive"): Promise<number> {
  return (await metrics[name].get()).values[0]?.value ?? 0;
}

async function refusals(metrics: GatewayMetrics, limit: string): Promise<number> {
  return (await metrics.limitRefusals.get()).values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

const hello = (token?: string, resume?: { streamId: string; afterSeq?: number }[]) =>
  JSON.stringify({ type: "hello", ...(token ? { token } : {}), ...(resume ? { resume } : {}) });

async function joined(h: Harness, token = "tok_alice") {
  const { socket, handler } = h.open();
  handler.onMessage(hello(token));
  const welcome = await socket.welcomeOrClose();
  expect(welcome).toMatchObject({ type: "welcome" });
  return { socket, handler };
}

const points = (count: number, prefix = "st_") =>
  Array.from({ length: count }, (_, i) => ({ streamId: `${prefix}${i}` }));

afterEach(() => {
  vi.useRealTimers();
});

/* ------------------------------------------------------------------------------------------------------------
 * chatgrid_sockets_open
 * ---------------------------------------------------------------------------------------------------------- */

interface CloseCase {
  name: string;
  overrides?: Partial<SocketHandlerDeps>;
  allowance?: number;
  /** Drives one socket to its end; returns the close code it must end with. */
  run(h: Harness, socket: FakeSocket, handler: SocketHandler): Promise<number>;
}

const closeCases: CloseCase[] = [
  {
    name: "before hello: hello timeout (4408)",
    overrides: { helloTimeoutMs: 20 },
    run: async () => CloseCode.helloTimeout,
  },
  {
    name: "before hello: a first frame that is not JSON (4400)",
    run: async (_h, _s, handler) => {
      handler.onMessage("{nope");
      return CloseCode.protocolViolation;
    },
  },
  {
    name: "before hello: a binary first frame (4400)",
    run: async (_h, _s, handler) => {
      handler.onMessage(new ArrayBuffer(4));
      return CloseCode.protocolViolation;
    },
  },
  {
    name: "before hello: a first frame that is not hello (4400)",
    run: async (_h, _s, handler) => {
      handler.onMessage(JSON.stringify({ type: "ping" }));
      return CloseCode.protocolViolation;
    },
  },
  {
    name: "before hello: too many frames at once (4429)",
    overrides: { frameBurst: 2, framesPerSecond: 1 },
    run: async (h, _s, handler) => {
      h.sessions.hold(); // hello is still resolving while more frames come
      for (let i = 0; i < 3; i++) handler.onMessage(hello("tok_alice"));
      return CloseCode.rateLimited;
    },
  },
  {
    name: "before hello: the client goes away without a frame (1006)",
    run: async (_h, socket) => {
      socket.drop(1006);
      return 1006;
    },
  },
  {
    name: "before hello: an unknown token (4401)",
    run: async (_h, _s, handler) => {
      handler.onMessage(hello("tok_unknown"));
      return CloseCode.unauthorized;
    },
  },
  {
    name: "before hello: Redis away during hello (1013)",
    run: async (h, _s, handler) => {
      h.sessions.failing = new Error("Connection is closed.");
      handler.onMessage(hello("tok_alice"));
      return 1013;
    },
  },
  {
    name: "before hello: new sessions from this address over their rate (4429)",
    allowance: 0,
    run: async (_h, _s, handler) => {
      handler.onMessage(hello());
      return CloseCode.rateLimited;
    },
  },
  {
    name: "before hello: the session has its maximum of sockets here (4430)",
    overrides: { socketsPerSession: 0 },
    run: async (_h, _s, handler) => {
      handler.onMessage(hello("tok_alice"));
      return CloseCode.tooManySockets;
    },
  },
  {
    name: "before hello: the gateway restarts (1012)",
    run: async (_h, _s, handler) => {
      handler.restart();
      return CloseCode.serviceRestart;
    },
  },
  {
    name: "during hello: the client goes away while its token is being resolved (1006)",
    run: async (h, socket, handler) => {
      h.sessions.hold();
      handler.onMessage(hello("tok_alice"));
      socket.drop(1006);
      h.sessions.release();
      return 1006;
    },
  },
  {
    name: "after hello: the client goes away (1006)",
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      socket.drop(1006);
      return 1006;
    },
  },
  {
    name: "after hello: the gateway restarts (1012)",
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      handler.restart();
      return CloseCode.serviceRestart;
    },
  },
  {
    name: "after hello: five bad frames in a row (4400)",
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      for (let i = 0; i < 5; i++) handler.onMessage("not json");
      return CloseCode.protocolViolation;
    },
  },
  {
    name: "after hello: too many frames (4429)",
    overrides: { frameBurst: 5, framesPerSecond: 1 },
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      for (let i = 0; i < 10; i++) handler.onMessage(JSON.stringify({ type: "ping" }));
      return CloseCode.rateLimited;
    },
  },
  {
    name: "after hello: too many resumed streams (4429)",
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      for (let i = 0; i < 3; i++) handler.onMessage(JSON.stringify({ type: "resume", streams: points(200) }));
      return CloseCode.rateLimited;
    },
  },
  {
    name: "after hello: a slow consumer (4409)",
    run: async (_h, socket, handler) => {
      handler.onMessage(hello("tok_alice"));
      await socket.welcomeOrClose();
      socket.bufferedAmount = 10_000;
      handler.onMessage(JSON.stringify({ type: "ping" }));
      return CloseCode.slowConsumer;
    },
  },
];

describe("chatgrid_sockets_open", () => {
  for (const c of closeCases) {
    it(`returns to 0: ${c.name}`, async () => {
      const h = harness(c.overrides, c.allowance);
      const { socket, handler } = h.open();
      expect(await gauge(h.metrics, "socketsOpen")).toBe(1);
      const expected = await c.run(h, socket, handler);
      expect(await socket.closed()).toBe(expected);
      // Whatever was still running for the socket has finished (a held hello, a resume).
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(await gauge(h.metrics, "socketsOpen")).toBe(0);
      expect(h.hub.socketCount("sess_alice")).toBe(0);
      expect(await gauge(h.metrics, "sessionsActive")).toBe(0);
      // The server reports a close once, but a second report must not count twice.
      handler.onClose(1000);
      expect(await gauge(h.metrics, "socketsOpen")).toBe(0);
      expect(socket.frames().some((f) => f.type === "welcome")).toBe(c.name.startsWith("after hello"));
    });
  }

  it("many sockets ending every way together leave it at 0", async () => {
    const h = harness({ helloTimeoutMs: 30 });
    const sockets = Array.from({ length: 40 }, (_, i) => ({ ...h.open(), i }));
    expect(await gauge(h.metrics, "socketsOpen")).toBe(40);
    for (const { socket, handler, i } of sockets) {
      // 0: a bad first frame; 1: hello, then a restart; 2: the client goes; 3: no hello in time.
      if (i % 4 === 0) handler.onMessage("bad");
      else if (i % 4 === 1) handler.onMessage(hello("tok_alice"));
      else if (i % 4 === 2) socket.drop();
    }
    for (const { socket, handler, i } of sockets) {
      if (i % 4 === 1) {
        await socket.welcomeOrClose();
        handler.restart();
      }
    }
    await Promise.all(sockets.map(({ socket }) => socket.closed()));
    expect(await gauge(h.metrics, "socketsOpen")).toBe(0);
  });
});

/* ------------------------------------------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------------------------------------------- */

describe("per-session socket limit (WS_SOCKETS_PER_SESSION)", () => {
  it("the next hello of a full session gets an error frame and 4430; the others keep working; a freed place is reused", async () => {
    const h = harness({ socketsPerSession: 3 });
    const open = [await joined(h), await joined(h), await joined(h)];
    expect(h.hub.socketCount("sess_alice")).toBe(3);
    const { socket: fourth, handler } = h.open();
    handler.onMessage(hello("tok_alice"));
    expect(await fourth.closed()).toBe(CloseCode.tooManySockets);
    expect(CloseCode.tooManySockets).toBe(4430);
    expect(fourth.frames()).toEqual([
      { type: "error", code: ErrorCode.tooManyConnections, message: expect.stringContaining("3 sockets") },
    ]);
    expect(await refusals(h.metrics, "sockets_session")).toBe(1);
    // The three still work.
    for (const { socket, handler: each } of open) {
      each.onMessage(JSON.stringify({ type: "ping" }));
      expect(await socket.next((f) => f.type === "pong")).toEqual({ type: "pong" });
      expect(socket.closeCode).toBeUndefined();
    }
    // Another session is not limited by alice's sockets.
    h.sessions.add("tok_bob", "sess_bob");
    await joined(h, "tok_bob");
    // One closes: its place is free again.
    open[0]!.socket.drop();
    await joined(h);
    expect(h.hub.socketCount("sess_alice")).toBe(3);
  });

  it("two hellos racing for the last place: exactly one gets it", async () => {
    const h = harness({ socketsPerSession: 2 });
    await joined(h);
    const a = h.open();
    const b = h.open();
    a.handler.onMessage(hello("tok_alice"));
    b.handler.onMessage(hello("tok_alice"));
    const outcomes = await Promise.all([a.socket.welcomeOrClose(), b.socket.welcomeOrClose()]);
    expect(outcomes.filter((o) => o === CloseCode.tooManySockets)).toHaveLength(1);
    expect(outcomes.filter((o) => typeof o === "object" && o.type === "welcome")).toHaveLength(1);
    expect(h.hub.socketCount("sess_alice")).toBe(2);
  });
});

describe("resumed streams are charged per entry (WS_RESUMES_PER_SECOND, burst MAX_RESUME_STREAMS)", () => {
  it("resume frames of 256 entries in a loop: closed with 4429; the Redis reads stay within burst + rate", async () => {
    const h = harness({ resumesPerSecond: 50 });
    for (let i = 0; i < 4096; i++) h.streams.owners.set(`st_${i}`, "sess_alice");
    const { socket, handler } = await joined(h);
    const started = performance.now();
    let framesSent = 0;
    while (socket.readyState === OPEN && framesSent < 100) {
      handler.onMessage(JSON.stringify({ type: "resume", streams: points(MAX_RESUME_STREAMS) }));
      framesSent++;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    expect(await socket.closed()).toBe(CloseCode.rateLimited);
    const elapsedSeconds = (performance.now() - started) / 1000;
    const allowed = MAX_RESUME_STREAMS + 50 * elapsedSeconds;
    expect(h.streams.metaReads).toBeLessThanOrEqual(allowed);
    expect(h.streams.metaReads).toBe(MAX_RESUME_STREAMS); // the first frame was served whole, the next not at all
    // Per resumed stream: its meta, one history read and one snapshot read; nothing for the refused frame.
    expect(h.streams.reads).toBeLessThanOrEqual(3 * allowed);
    expect(await refusals(h.metrics, "resume_rate")).toBe(1);
    expect(framesSent).toBe(2);
  });

  it("two frames in one read, the second refused: the socket closes and the first, still queued, reads nothing", async () => {
    const h = harness({ resumesPerSecond: 50 });
    for (let i = 0; i < 4096; i++) h.streams.owners.set(`st_${i}`, "sess_alice");
    const { socket, handler } = await joined(h);
    // ws emits every frame of one TCP read in the same tick, before the first frame's turn in the queue comes.
    handler.onMessage(JSON.stringify({ type: "resume", streams: points(MAX_RESUME_STREAMS) }));
    handler.onMessage(JSON.stringify({ type: "resume", streams: points(MAX_RESUME_STREAMS) }));
    expect(await socket.closed()).toBe(CloseCode.rateLimited);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(h.streams.metaReads).toBe(0);
    expect(await refusals(h.metrics, "resume_rate")).toBe(1);
  });

  it("a full resume at hello passes; after that the rate applies: burst + rate per second, then 4429", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const h = harness({ resumesPerSecond: 50 });
    for (let i = 0; i < 1000; i++) h.streams.owners.set(`st_${i}`, "sess_alice");
    const { socket, handler } = h.open();
    handler.onMessage(hello("tok_alice", points(MAX_RESUME_STREAMS)));
    expect(await socket.welcomeOrClose()).toMatchObject({ type: "welcome" });
    vi.advanceTimersByTime(1000);
    handler.onMessage(JSON.stringify({ type: "resume", streams: points(50, "st_1") }));
    // Frames are handled in order: the pong comes once both resumes have done their reads.
    handler.onMessage(JSON.stringify({ type: "ping" }));
    await socket.next((f) => f.type === "pong");
    expect(h.streams.metaReads).toBe(MAX_RESUME_STREAMS + 50);
    handler.onMessage(JSON.stringify({ type: "resume", streams: points(1, "st_9") }));
    expect(await socket.closed()).toBe(CloseCode.rateLimited);
    expect(h.streams.metaReads).toBe(MAX_RESUME_STREAMS + 50);
    expect(await refusals(h.metrics, "resume_rate")).toBe(1);
  });

  it("a steady client within the rate is never closed", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const h = harness({ resumesPerSecond: 50 });
    const { socket, handler } = await joined(h);
    for (let second = 0; second < 20; second++) {
      vi.advanceTimersByTime(1000);
      handler.onMessage(JSON.stringify({ type: "resume", streams: points(50) }));
    }
    handler.onMessage(JSON.stringify({ type: "ping" }));
    expect(await socket.next((f) => f.type === "pong")).toEqual({ type: "pong" });
    expect(socket.closeCode).toBeUndefined();
    expect(h.streams.metaReads).toBe(20 * 50);
  });
});

describe("a hello without a token is limited like POST /api/sessions (per client address)", () => {
  it("over the limit: error rate_limited and 4429, no session made; a token still works; the address is the socket's", async () => {
    const h = harness({}, 2);
    for (let i = 0; i < 2; i++) {
      const { socket, handler } = h.open("198.51.100.9");
      handler.onMessage(hello());
      expect(await socket.welcomeOrClose()).toMatchObject({ type: "welcome", sessionId: `sess_new${i + 1}` });
    }
    const { socket, handler } = h.open("198.51.100.9");
    handler.onMessage(hello());
    expect(await socket.closed()).toBe(CloseCode.rateLimited);
    expect(socket.frames()).toEqual([
      { type: "error", code: ErrorCode.rateLimited, message: expect.stringContaining("retry in 7 s") },
    ]);
    expect(h.sessions.created).toBe(2);
    expect(await refusals(h.metrics, "session_create")).toBe(1);
    expect(h.limiter.calls).toEqual(["198.51.100.9", "198.51.100.9", "198.51.100.9"]);
    // A hello with a token makes no session and is not charged.
    await joined(h);
    expect(h.limiter.calls).toHaveLength(3);
  });
});

describe("errors sent to users carry no internal detail", () => {
  it("a resume whose Redis read fails: a generic unavailable error; the detail goes to the log and a metric", async () => {
    const h = harness();
    const { socket, handler } = await joined(h);
    h.streams.failing = new Error("connect ECONNREFUSED 10.0.3.7:6379");
    handler.onMessage(JSON.stringify({ type: "resume", streams: [{ streamId: "st_x" }] }));
    const error = await socket.next((f) => f.type === "error");
    expect(error).toEqual({
      type: "error",
      code: ErrorCode.unavailable,
      message: "could not resume now; try again",
      streamId: "st_x",
    });
    expect(socket.sent.join("")).not.toMatch(/ECONNREFUSED|10\.0\.3\.7|6379/);
    expect(h.logged).toContainEqual({
      fields: expect.objectContaining({ err: h.streams.failing, streamId: "st_x" }),
      message: "resume read failed",
    });
    expect((await h.metrics.historyReadFailures.get()).values[0]?.value).toBe(1);
  });
});
