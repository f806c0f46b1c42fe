import type { Logger, RateLimiterLike, SessionStore, StreamStore } from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import {
  type ClientFrame,
  ClientFrameSchema,
  CloseCode,
  ErrorCode,
  MAX_RESUME_STREAMS,
  type ResumePoint,
} from "@chatgrid/protocol";
import type { GatewayMetrics } from "../metrics";
import { ClientConnection, type Transport } from "./client-connection";
import { TokenBucket } from "./frame-rate";
import type { SessionHub } from "./session-hub";

/** What the handler uses of a `ws` WebSocket (tests pass a fake). */
export interface SocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** WebSocket ready states (the `ws` and browser values). */
const CONNECTING = 0;
const OPEN = 1;

export interface SocketHandlerDeps {
  node: string;
  sessions: Pick<SessionStore, "resolve" | "create">;
  streams: Pick<StreamStore, "meta" | "readAfter" | "snapshot">;
  hub: SessionHub;
  metrics: GatewayMetrics;
  log: Logger;
  events: Pick<EventProducer, "emit">;
  /** New sessions per client address: a hello without a token makes one (like POST /api/sessions). */
  sessionCreateLimiter: RateLimiterLike;
  helloTimeoutMs: number;
  sendBufferBytes: number;
  framesPerSecond: number;
  frameBurst: number;
  /** Sockets of one session on this gateway (WS_SOCKETS_PER_SESSION); the next hello is closed with 4430. */
  socketsPerSession: number;
  /** Resumed streams per second per socket (WS_RESUMES_PER_SECOND); the burst is one full resume. */
  resumesPerSecond: number;
}

/** Consecutive bad frames after which the socket is closed with 4400 instead of answered with `error`. */
const MAX_BAD_FRAMES = 5;
/** The WebSocket "try again later" code, used when Redis is away during hello. */
const TRY_AGAIN_LATER = 1013;

function transportOf(ws: SocketLike): Transport {
  return {
    send: (frame) => ws.send(frame),
    close: (code, reason) => ws.close(code, reason),
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get open() {
      return ws.readyState === OPEN;
    },
  };
}

/**
 * The life of one socket: hello within the timeout, then resume/ping frames, each validated with the protocol
 * schemas. Frames are handled one after another, so a resume sent right behind hello waits for the welcome.
 * Limits (docs/protocol.md "WebSocket"): frames per second, resumed streams per second, sockets per session, and
 * new sessions per client address.
 */
export class SocketHandler {
  private connection: ClientConnection | undefined;
  private readonly helloTimer: NodeJS.Timeout;
  private queue: Promise<void> = Promise.resolve();
  private badFrames = 0;
  private readonly frames: TokenBucket;
  /** Each resumed stream costs a meta read and a history read: charged per entry, not per frame. */
  private readonly resumes: TokenBucket;
  /** No frame is handled any more (we closed, or the socket is gone). */
  private closed = false;
  /** onClose ran: the socket is accounted for exactly once, however it ended. */
  private ended = false;

  constructor(
    private readonly ws: SocketLike,
    private readonly deps: SocketHandlerDeps,
    private readonly client: { address: string },
  ) {
    this.frames = new TokenBucket(deps.framesPerSecond, deps.frameBurst);
    this.resumes = new TokenBucket(deps.resumesPerSecond, MAX_RESUME_STREAMS);
    this.helloTimer = setTimeout(() => this.close(CloseCode.helloTimeout, "no hello in time"), deps.helloTimeoutMs);
    deps.metrics.socketsOpen.inc();
  }

  onMessage(data: string | ArrayBuffer): void {
    if (this.closed) return;
    if (!this.frames.take()) {
      this.close(CloseCode.rateLimited, "too many frames");
      return;
    }
    const frame = this.parse(data);
    if (!frame) return;
    this.badFrames = 0;
    const entries =
      frame.type === "resume" ? frame.streams.length : frame.type === "hello" ? (frame.resume?.length ?? 0) : 0;
    if (entries > 0 && !this.resumes.take(entries)) {
      // Refused before any Redis read: the frame that does not fit is not served in part.
      this.deps.metrics.limitRefusals.inc({ limit: "resume_rate" });
      this.close(CloseCode.rateLimited, "too many resumed streams");
      return;
    }
    // Hold live events of resumed streams from this moment, before any await (see prepareResume).
    if (frame.type === "resume") for (const p of frame.streams) this.connection?.prepareResume(p.streamId, p.afterSeq);
    this.queue = this.queue
      .then(() => this.handle(frame))
      .catch((error: unknown) => {
        this.deps.log.error({ err: error, sessionId: this.connection?.sessionId }, "socket frame failed");
        this.sendError(ErrorCode.internal, "internal error");
      });
  }

  /** The socket is gone (whoever closed it, before or after hello): called once per socket by the server. */
  onClose(code?: number): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    clearTimeout(this.helloTimer);
    if (this.connection) {
      this.connection.markClosed();
      this.deps.hub.leave(this.connection);
      this.deps.events.emit({ type: "session.closed", sessionId: this.connection.sessionId, closeCode: code ?? 1005 });
      this.connection = undefined;
    }
    this.deps.metrics.socketsOpen.dec();
    this.deps.metrics.sessionsActive.set(this.deps.hub.sessionCount);
  }

  /** Graceful shutdown: 1012 tells the client to reconnect at once and resume elsewhere. */
  restart(): void {
    this.close(CloseCode.serviceRestart, "gateway restarting");
  }

  private close(code: number, reason: string): void {
    if (this.ws.readyState === OPEN || this.ws.readyState === CONNECTING) this.ws.close(code, reason);
    this.closed = true;
  }

  private async handle(frame: ClientFrame): Promise<void> {
    if (this.closed) return;
    if (!this.connection) {
      if (frame.type !== "hello") return this.close(CloseCode.protocolViolation, "the first frame must be hello");
      return this.hello(frame.token, frame.resume ?? []);
    }
    switch (frame.type) {
      case "hello":
        return void this.bad("hello was already received");
      case "ping":
        return this.connection.sendControl({ type: "pong" });
      case "resume":
        return this.resume(frame.streams);
    }
  }

  private parse(data: string | ArrayBuffer): ClientFrame | undefined {
    if (typeof data !== "string") return this.bad("frames are JSON text");
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return this.bad("frame is not JSON");
    }
    const parsed = ClientFrameSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.bad(`invalid frame: ${issue ? `${issue.path.join(".") || "frame"}: ${issue.message}` : "schema"}`);
    }
    return parsed.data;
  }

  /** Before hello a bad frame closes the socket; after, it gets an `error` frame until too many come in a row. */
  private bad(message: string): undefined {
    if (!this.connection || ++this.badFrames >= MAX_BAD_FRAMES) {
      this.close(CloseCode.protocolViolation, message.slice(0, 120));
    } else {
      this.sendError(ErrorCode.badRequest, message);
    }
    return undefined;
  }

  private sendError(code: string, message: string, streamId?: string): void {
    const frame = streamId ? { type: "error", code, message, streamId } : { type: "error", code, message };
    if (this.connection) this.connection.sendControl(frame);
    else if (this.ws.readyState === OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Refuses the hello with an `error` frame and a close code; counted by the limit's name. */
  private refuse(limit: string, code: string, message: string, closeCode: number, reason: string): void {
    this.deps.metrics.limitRefusals.inc({ limit });
    this.sendError(code, message);
    this.close(closeCode, reason);
  }

  private async hello(token: string | undefined, resume: ResumePoint[]): Promise<void> {
    clearTimeout(this.helloTimer);
    let sessionId: string;
    let sessionToken: string;
    let connection: ClientConnection;
    try {
      if (token) {
        const resolved = await this.deps.sessions.resolve(token);
        if (!resolved) return this.close(CloseCode.unauthorized, "unknown or expired token");
        sessionId = resolved;
        sessionToken = token;
      } else {
        // A new session costs Redis memory for days: bounded per address, like POST /api/sessions.
        const decision = await this.deps.sessionCreateLimiter.check(this.client.address);
        if (this.closed) return;
        if (!decision.allowed) {
          return this.refuse(
            "session_create",
            ErrorCode.rateLimited,
            `too many new sessions from this address; retry in ${decision.retryAfterSeconds} s`,
            CloseCode.rateLimited,
            "too many new sessions",
          );
        }
        ({ sessionId, token: sessionToken } = await this.deps.sessions.create());
      }
      if (this.closed) return;
      // Checked and joined with no await between: two hellos of one session cannot both take the last place.
      if (this.deps.hub.socketCount(sessionId) >= this.deps.socketsPerSession) {
        return this.refuse(
          "sockets_session",
          ErrorCode.tooManyConnections,
          `this session already has ${this.deps.socketsPerSession} sockets on this gateway; close one`,
          CloseCode.tooManySockets,
          "too many sockets for this session",
        );
      }
      connection = new ClientConnection(sessionId, transportOf(this.ws), this.deps.streams, this.deps.sendBufferBytes, {
        delivered: (n) => this.deps.metrics.chunksDelivered.inc(n),
        replayed: (n) => {
          if (n > 0) this.deps.metrics.replayedEvents.inc(n);
        },
        gapFilled: () => this.deps.metrics.gapsFilled.inc(),
        snapshot: () => this.deps.metrics.snapshotsSent.inc(),
        slowConsumer: () => {
          this.deps.metrics.slowConsumerCloses.inc();
          this.deps.events.emit({
            type: "socket.slow_consumer_closed",
            sessionId,
            bufferedBytes: this.ws.bufferedAmount,
          });
        },
        historyFailed: (streamId, error) => {
          this.deps.metrics.historyReadFailures.inc();
          this.deps.log.warn({ err: error, sessionId, streamId }, "history read failed");
        },
      });
      this.connection = connection;
      for (const point of resume) connection.prepareResume(point.streamId, point.afterSeq);
      await this.deps.hub.join(connection);
    } catch (error) {
      this.deps.log.warn({ err: error }, "hello failed (Redis away?)");
      this.connection = undefined;
      this.sendError(ErrorCode.unavailable, "the service is temporarily unavailable; reconnect");
      return this.close(TRY_AGAIN_LATER, "try again later");
    }
    if (this.closed) {
      // The socket went while we joined (onClose already left the hub if it saw the connection; leave is idempotent).
      this.deps.hub.leave(connection);
      return;
    }
    this.deps.metrics.sessionsActive.set(this.deps.hub.sessionCount);
    this.deps.events.emit({ type: "session.opened", sessionId, via: "ws", created: !token });
    connection.sendControl({ type: "welcome", sessionId, token: sessionToken, node: this.deps.node });
    this.deps.log.debug({ sessionId }, "socket joined");
    await this.resume(resume);
  }

  private async resume(points: ResumePoint[]): Promise<void> {
    const connection = this.connection;
    if (!connection || points.length === 0) return;
    await Promise.all(
      points.map(async ({ streamId, afterSeq }) => {
        this.deps.metrics.resumeRequests.inc();
        try {
          const meta = await this.deps.streams.meta(streamId);
          // Another session's stream is answered exactly like a stream that does not exist.
          if (!meta || meta.sessionId !== connection.sessionId) {
            connection.abandonResume(streamId);
            return this.sendError(ErrorCode.streamUnknown, "no such stream in this session", streamId);
          }
          await connection.resume(streamId, afterSeq);
        } catch (error) {
          connection.releaseResume(streamId);
          this.deps.metrics.historyReadFailures.inc();
          this.deps.log.warn({ err: error, sessionId: connection.sessionId, streamId }, "resume read failed");
          this.sendError(ErrorCode.unavailable, "could not resume now; try again", streamId);
        }
      }),
    );
  }
}
