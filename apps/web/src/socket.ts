import {
  CloseCode,
  type ErrorFrame,
  MAX_RESUME_STREAMS,
  type ResumePoint,
  ServerFrameSchema,
  type StreamEvent,
  type WelcomeFrame,
} from "@chatgrid/protocol";
import { ReconnectPolicy, TRY_AGAIN_LATER } from "./reconnect-policy";

/**
 * `connecting`: first connection of this page. `connected`: welcome received. `reconnecting`: the socket was lost,
 * the next attempt is scheduled. `resumed`: a reconnect succeeded and the unfinished streams were resumed (shown
 * for a few seconds, then `connected`). `offline`: the browser is offline, or many attempts failed in a row (the
 * client keeps trying at the capped interval).
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "resumed" | "offline";

export interface ConnectionInfo {
  state: ConnectionState;
  /** The gateway the socket is on (welcome.node), while connected. */
  node?: string;
  sessionId?: string;
  /** Consecutive failed attempts. */
  attempt: number;
  /** When the next attempt starts (epoch ms), while waiting. */
  retryAt?: number;
  lastClose?: { code: number; reason: string };
}

export interface LogEntry {
  id: number;
  at: number;
  level: "info" | "ok" | "warn";
  text: string;
}

export interface SocketHandlers {
  token(): string | undefined;
  /** The last seq of every unfinished stream, read at each (re)connect. */
  resumePoints(): ResumePoint[];
  onWelcome(frame: WelcomeFrame, info: { reconnect: boolean; resumed: number }): void;
  onStreamEvent(event: StreamEvent, node: string): void;
  onErrorFrame(frame: ErrorFrame): void;
  onConnection(info: ConnectionInfo): void;
  onLog(level: LogEntry["level"], text: string): void;
  /** 4401: the token is unknown or expired; the handler forgets it (the next hello starts a new session). */
  onUnauthorized(): void;
}

export interface SocketOptions {
  url: string;
  policy?: ReconnectPolicy;
  /** Failed attempts in a row after which the state shows `offline`. */
  offlineAfter?: number;
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  /** Without any frame for this long (pings included), the socket is presumed dead and replaced. */
  silenceTimeoutMs?: number;
  resumedDisplayMs?: number;
  WebSocketImpl?: typeof WebSocket;
}

const CLOSE_NAMES: Record<number, string> = {
  1000: "normal",
  1001: "going away",
  1006: "connection lost",
  [CloseCode.frameTooLarge]: "frame too large",
  [CloseCode.serviceRestart]: "gateway restarting",
  [TRY_AGAIN_LATER]: "try again later",
  [CloseCode.protocolViolation]: "protocol violation",
  [CloseCode.unauthorized]: "session unknown or expired",
  [CloseCode.helloTimeout]: "hello timeout",
  [CloseCode.slowConsumer]: "slow consumer",
  [CloseCode.rateLimited]: "rate limited",
  [CloseCode.tooManySockets]: "too many tabs of this session",
  4000: "no answer to ping",
};

export function closeName(code: number): string {
  return CLOSE_NAMES[code] ?? "closed";
}

type Timer = ReturnType<typeof setTimeout>;

/**
 * The WebSocket of the page: hello with token and resume points, frames validated with the protocol's schemas,
 * heartbeat, and reconnection with backoff and jitter (docs/protocol.md "Client behaviour").
 */
export class ChatSocket {
  private ws: WebSocket | undefined;
  private readonly policy: ReconnectPolicy;
  private info: ConnectionInfo = { state: "connecting", attempt: 0 };
  private everWelcomed = false;
  private welcomed = false;
  private stopped = true;
  private retryTimer: Timer | undefined;
  private helloTimer: Timer | undefined;
  private pingTimer: Timer | undefined;
  private resumedTimer: Timer | undefined;
  private lastFrameAt = 0;
  private readonly options: Required<Omit<SocketOptions, "policy" | "WebSocketImpl">>;
  private readonly WebSocketImpl: typeof WebSocket;

  constructor(
    options: SocketOptions,
    private readonly handlers: SocketHandlers,
  ) {
    this.policy = options.policy ?? new ReconnectPolicy();
    this.WebSocketImpl = options.WebSocketImpl ?? WebSocket;
    this.options = {
      url: options.url,
      offlineAfter: options.offlineAfter ?? 6,
      helloTimeoutMs: options.helloTimeoutMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      silenceTimeoutMs: options.silenceTimeoutMs ?? 45_000,
      resumedDisplayMs: options.resumedDisplayMs ?? 4_000,
    };
  }

  get connection(): ConnectionInfo {
    return this.info;
  }

  get isOpen(): boolean {
    return this.welcomed && this.ws?.readyState === this.WebSocketImpl.OPEN;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    globalThis.addEventListener?.("online", this.onOnline);
    globalThis.addEventListener?.("offline", this.onOffline);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    globalThis.removeEventListener?.("offline", this.onOffline);
    this.clearTimers();
    this.ws?.close(1000, "page closed");
    this.ws = undefined;
  }

  /** Asks for more streams on the open socket; when closed, the next hello carries them anyway. */
  resume(points: ResumePoint[]): void {
    if (!this.isOpen || points.length === 0) return;
    for (let i = 0; i < points.length; i += MAX_RESUME_STREAMS) {
      this.send({ type: "resume", streams: points.slice(i, i + MAX_RESUME_STREAMS) });
    }
  }

  /** Replaces the socket at once (a stream needs a fresh resume, or the user asked to retry now). */
  reconnectNow(reason: string): void {
    if (this.stopped) return;
    this.handlers.onLog("info", `reconnecting now: ${reason}`);
    this.policy.succeeded();
    this.dropSocket(4000, reason);
    this.connect();
  }

  private update(patch: Partial<ConnectionInfo>): void {
    this.info = { ...this.info, ...patch };
    this.handlers.onConnection(this.info);
  }

  private clearTimers(): void {
    for (const timer of [this.retryTimer, this.helloTimer, this.resumedTimer]) clearTimeout(timer);
    clearInterval(this.pingTimer);
    this.retryTimer = this.helloTimer = this.resumedTimer = this.pingTimer = undefined;
  }

  private send(frame: unknown): void {
    if (this.ws?.readyState === this.WebSocketImpl.OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Detaches the current socket (its late events are ignored) and closes it. */
  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = undefined;
    this.welcomed = false;
    this.clearTimers();
    if (ws && ws.readyState !== this.WebSocketImpl.CLOSED) {
      try {
        ws.close(code, reason.slice(0, 100));
      } catch {
        ws.close();
      }
    }
  }

  private connect(): void {
    this.clearTimers();
    if (this.stopped) return;
    let ws: WebSocket;
    try {
      ws = new this.WebSocketImpl(this.options.url);
    } catch (error) {
      this.handlers.onLog("warn", `cannot open ${this.options.url}: ${(error as Error).message}`);
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    if (!this.everWelcomed)
      this.update({
        state: this.info.attempt >= this.options.offlineAfter ? "offline" : "connecting",
        retryAt: undefined,
      });
    // Open and welcome within the bound, or this attempt counts as failed.
    this.helloTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      this.handlers.onLog("warn", "no welcome in time");
      this.dropSocket(4000, "no welcome");
      this.scheduleRetry();
    }, this.options.helloTimeoutMs);

    ws.onopen = () => {
      if (this.ws !== ws) return;
      const token = this.handlers.token();
      const points = this.handlers.resumePoints();
      this.send({
        type: "hello",
        ...(token ? { token } : {}),
        ...(points.length > 0 ? { resume: points.slice(0, MAX_RESUME_STREAMS) } : {}),
      });
      this.pendingResume = points.slice(MAX_RESUME_STREAMS);
      this.handlers.onLog(
        "info",
        `socket open; hello ${token ? "with token" : "without token (new session)"}${points.length > 0 ? `, resuming ${points.length} stream(s)` : ""}`,
      );
    };
    ws.onmessage = (message) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      this.onMessage(message.data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.onClose(event.code, event.reason);
    };
    ws.onerror = () => undefined; // a close event always follows
  }

  private pendingResume: ResumePoint[] = [];

  private onMessage(data: unknown): void {
    if (typeof data !== "string") return;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      this.handlers.onLog("warn", "ignored a frame that is not JSON");
      return;
    }
    const parsed = ServerFrameSchema.safeParse(json);
    if (!parsed.success) {
      this.handlers.onLog("warn", `ignored an invalid frame (${String((json as { type?: unknown })?.type)})`);
      return;
    }
    const frame = parsed.data;
    if (frame.type === "welcome") this.onWelcome(frame);
    else if (frame.type === "error") this.handlers.onErrorFrame(frame);
    else if (frame.type !== "pong") this.handlers.onStreamEvent(frame, this.info.node ?? "?");
  }

  private onWelcome(frame: WelcomeFrame): void {
    clearTimeout(this.helloTimer);
    const reconnect = this.everWelcomed;
    const resumed = this.handlers.resumePoints().length;
    this.welcomed = true;
    this.everWelcomed = true;
    this.policy.succeeded();
    this.update({
      state: reconnect ? "resumed" : "connected",
      node: frame.node,
      sessionId: frame.sessionId,
      attempt: 0,
      retryAt: undefined,
    });
    this.handlers.onLog("ok", `welcome from ${frame.node}${reconnect ? ` — resumed ${resumed} stream(s)` : ""}`);
    this.handlers.onWelcome(frame, { reconnect, resumed });
    if (this.pendingResume.length > 0) this.resume(this.pendingResume.splice(0));
    if (reconnect) {
      this.resumedTimer = setTimeout(() => {
        if (this.info.state === "resumed") this.update({ state: "connected" });
      }, this.options.resumedDisplayMs);
    }
    this.lastFrameAt = Date.now();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > this.options.silenceTimeoutMs) {
        this.handlers.onLog("warn", "no frame for too long: replacing the socket");
        this.dropSocket(4000, "silent");
        this.onClose(4000, "silent");
        return;
      }
      this.send({ type: "ping" });
    }, this.options.pingIntervalMs);
  }

  private onClose(code: number, reason: string): void {
    this.clearTimers();
    const wasWelcomed = this.welcomed;
    this.welcomed = false;
    if (this.stopped) return;
    this.update({ lastClose: { code, reason }, node: undefined });
    this.handlers.onLog("warn", `socket closed: ${code} ${closeName(code)}${reason ? ` (${reason})` : ""}`);
    if (code === CloseCode.unauthorized) {
      this.handlers.onUnauthorized();
      this.connect();
      return;
    }
    this.scheduleRetry(wasWelcomed ? code : undefined);
  }

  private scheduleRetry(closeCode?: number): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const delay = this.policy.nextDelay(closeCode);
    const attempt = this.policy.attempts;
    const offline = globalThis.navigator?.onLine === false || attempt >= this.options.offlineAfter;
    const state: ConnectionState = offline ? "offline" : this.everWelcomed ? "reconnecting" : "connecting";
    this.update({ state, attempt, retryAt: Date.now() + delay });
    this.handlers.onLog("info", `next attempt in ${delay} ms (attempt ${attempt})`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private readonly onOnline = () => {
    this.handlers.onLog("info", "browser is online");
    if (!this.ws) {
      this.policy.succeeded();
      this.connect();
    }
  };

  private readonly onOffline = () => {
    this.handlers.onLog("warn", "browser is offline");
    if (!this.isOpen) this.update({ state: "offline" });
  };
}
