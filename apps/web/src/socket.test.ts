import type { ResumePoint, StreamEvent } from "@chatgrid/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ReconnectPolicy } from "./reconnect-policy";
import { ChatSocket, type ConnectionInfo, type SocketHandlers } from "./socket";

/** A WebSocket stand-in the test drives: open, receive frames, drop with a close code. */
class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static all: FakeSocket[] = [];
  readyState = FakeSocket.CONNECTING;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = FakeSocket.CLOSED;
  }
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }
  drop(code: number) {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason: "" });
  }
}

function setup(points: ResumePoint[] = []) {
  const states: ConnectionInfo["state"][] = [];
  const events: { event: StreamEvent; node: string }[] = [];
  const errors: string[] = [];
  let token: string | undefined = "tok";
  let unauthorized = 0;
  const handlers: SocketHandlers = {
    token: () => token,
    resumePoints: () => points,
    onWelcome: (frame) => {
      token = frame.token;
    },
    onStreamEvent: (event, node) => events.push({ event, node }),
    onErrorFrame: (frame) => errors.push(frame.code),
    onConnection: (info) => {
      if (states.at(-1) !== info.state) states.push(info.state);
    },
    onLog: () => undefined,
    onUnauthorized: () => {
      unauthorized++;
      token = undefined;
    },
  };
  const socket = new ChatSocket(
    {
      url: "ws://test/ws/chat",
      policy: new ReconnectPolicy({ random: () => 0 }),
      WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    },
    handlers,
  );
  const welcome = (ws: FakeSocket, node: string) =>
    ws.receive({ type: "welcome", sessionId: "sess_1", token: "tok", node });
  return { socket, states, events, errors, welcome, unauthorized: () => unauthorized };
}

const last = () => FakeSocket.all.at(-1)!;

describe("ChatSocket", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("says hello with the token and every resume point, and reports the gateway", () => {
    const t = setup([{ streamId: "st_a", afterSeq: 7 }, { streamId: "st_b" }]);
    t.socket.start();
    last().open();
    expect(last().sent[0]).toEqual({
      type: "hello",
      token: "tok",
      resume: [{ streamId: "st_a", afterSeq: 7 }, { streamId: "st_b" }],
    });
    t.welcome(last(), "gateway-2");
    expect(t.socket.connection).toMatchObject({ state: "connected", node: "gateway-2", attempt: 0 });
  });

  it("passes stream events on with the gateway that sent them; drops frames that fail the schema", () => {
    const t = setup();
    t.socket.start();
    last().open();
    t.welcome(last(), "gateway-1");
    last().receive({ type: "chunk", streamId: "st_a", seq: 1, delta: "hi" });
    last().receive({ type: "chunk", streamId: "st_a", seq: -4, delta: "bad seq" });
    last().receive({ type: "mystery" });
    last().receive("not json");
    last().receive({ type: "error", code: "stream_unknown", message: "no", streamId: "st_x" });
    expect(t.events).toEqual([{ event: { type: "chunk", streamId: "st_a", seq: 1, delta: "hi" }, node: "gateway-1" }]);
    expect(t.errors).toEqual(["stream_unknown"]);
  });

  it("after a lost socket: reconnecting with backoff, then resumed on the next gateway, then connected", () => {
    const t = setup([{ streamId: "st_a", afterSeq: 3 }]);
    t.socket.start();
    last().open();
    t.welcome(last(), "gateway-1");
    last().drop(1006);
    expect(t.socket.connection.state).toBe("reconnecting");
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(124);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1); // 125 ms: the first backoff step with random() = 0
    expect(FakeSocket.all).toHaveLength(2);
    // The next attempt fails before opening: the delay doubles.
    last().drop(1006);
    vi.advanceTimersByTime(249);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
    last().open();
    expect(last().sent[0]).toMatchObject({ type: "hello", resume: [{ streamId: "st_a", afterSeq: 3 }] });
    t.welcome(last(), "gateway-3");
    expect(t.socket.connection).toMatchObject({ state: "resumed", node: "gateway-3", attempt: 0 });
    vi.advanceTimersByTime(4_000);
    expect(t.states).toEqual(["connecting", "connected", "reconnecting", "resumed", "connected"]);
  });

  it("1012 (gateway restarting) reconnects at once", () => {
    const t = setup();
    t.socket.start();
    last().open();
    t.welcome(last(), "gateway-1");
    last().drop(1012);
    vi.advanceTimersByTime(0);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("4401 forgets the token and starts a new session at once", () => {
    const t = setup();
    t.socket.start();
    last().open();
    last().drop(4401);
    expect(t.unauthorized()).toBe(1);
    expect(FakeSocket.all).toHaveLength(2);
    last().open();
    expect(last().sent[0]).toEqual({ type: "hello" });
  });

  it("shows offline after many failed attempts in a row, and keeps trying", () => {
    const t = setup();
    t.socket.start();
    for (let i = 0; i < 6; i++) {
      last().drop(1006);
      vi.advanceTimersByTime(10_000);
    }
    expect(t.socket.connection.state).toBe("offline");
    expect(FakeSocket.all.length).toBe(7);
  });

  it("a socket that never welcomes is replaced after the hello timeout", () => {
    const t = setup();
    t.socket.start();
    last().open();
    vi.advanceTimersByTime(10_000);
    expect(t.socket.connection.state).toBe("connecting");
    vi.advanceTimersByTime(125);
    expect(FakeSocket.all).toHaveLength(2);
  });

  it("resume() on an open socket sends a resume frame; stop() stops reconnecting", () => {
    const t = setup();
    t.socket.start();
    last().open();
    t.welcome(last(), "gateway-1");
    t.socket.resume([{ streamId: "st_n" }]);
    expect(last().sent.at(-1)).toEqual({ type: "resume", streams: [{ streamId: "st_n" }] });
    t.socket.stop();
    last().drop(1006);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});
