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
import { ClientConnection, type ConnectionCounters, type Transport } from "./client-connection";
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

/**
 * What a connection uses of its socket and of the gateway: the socket as its transport, and the counters. Methods
 * on the prototype, so a socket pays for one small object, not a closure per callback.
 */
class SocketBinding implements Transport, ConnectionCounters {
  constructor(
    private readonly ws: SocketLike,
    private readonly deps: SocketHandlerDeps,
    private readonly sessionId: string,
  ) {}

  send(frame: string): void {
    this.ws.send(frame);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get open(): boolean {
    return this.ws.readyState === OPEN;
  }

  delivered(count: number): void {
    this.deps.metrics.chunksDelivered.inc(count);
  }

  replayed(count: number): void {
    if (count > 0) this.deps.metrics.replayedEvents.inc(count);
  }

  gapFilled(): void {
    this.deps.metrics.gapsFilled.inc();
  }

  snapshot(): void {
    this.deps.metrics.snapshotsSent.inc();
  }

  slowConsumer(): void {
    this.deps.metrics.slowConsumerCloses.inc();
    this.deps.events.emit({
      type: "socket.slow_consumer_closed",
      sessionId: this.sessionId,
      bufferedBytes: this.ws.bufferedAmount,
    });
  }

  historyFailed(streamId: string, error: unknown): void {
    this.deps.metrics.historyReadFailures.inc();
    this.deps.log.warn({ err: error, sessionId: this.sessionId, streamId }, "history read failed");
  }
}

/**
 * The life of one socket: hello within the timeout, then resume/ping frames, each validated with the protocol
 * schemas. Frames are handled one after another, so a resume sent right behind hello waits for the welcome.
 * Limits (docs/protocol.md "WebSocket"): frames per second, resumed streams per second, sockets per session, and
 * new sessions per client address.
 *
 * An idle socket holds only what it needs (docs/benchmarks.md): `deps` is shared by every socket, the hello timer is
 * let go once hello came, the resume bucket exists from the first resumed stream on (a bucket made then is as full
 * as one made with the socket), and a settled frame queue is dropped.
 */
export class SocketHandler {
  private connection: ClientConnection | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  /** The frames being handled, in order; undefined when none is. */
  private queue: Promise<void> | undefined;
  private badFrames = 0;
  private readonly frames: TokenBucket;
  /** Each resumed stream costs a meta read and a history read: charged per entry, not per frame. */
  private resumes: TokenBucket | undefined;
  /** No frame is handled any more (we closed, or the socket is gone). */
  private closed = false;
  /** onClose ran: the socket is accounted for exactly once, however it ended. */
  private ended = false;
  private readonly address: string;

  constructor(
    private readonly ws: SocketLike,
    private readonly deps: SocketHandlerDeps,
    client: { address: string },
  ) {
    this.address = client.address;
    this.frames = new TokenBucket(deps.framesPerSecond, deps.frameBurst);
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
    if (entries > 0 && !this.resumeBucket().take(entries)) {
      // Refused before any Redis read: the frame that does not fit is not served in part.
      this.deps.metrics.limitRefusals.inc({ limit: "resume_rate" });
      this.close(CloseCode.rateLimited, "too many resumed streams");
      return;
    }
    // Hold live events of resumed streams from this moment, before any await (see prepareResume).
    if (frame.type === "resume") for (const p of frame.streams) this.connection?.prepareResume(p.streamId, p.afterSeq);
    const queued: Promise<void> = (this.queue ?? Promise.resolve())
      .then(() => this.handle(frame))
      .catch((error: unknown) => {
        this.deps.log.error({ err: error, sessionId: this.connection?.sessionId }, "socket frame failed");
        this.sendError(ErrorCode.internal, "internal error");
      })
      .then(() => {
        if (this.queue === queued) this.queue = undefined;
      });
    this.queue = queued;
  }

  /** The socket is gone (whoever closed it, before or after hello): called once per socket by the server. */
  onClose(code?: number): void {
    if (this.ended) return;
    this.ended = true;
    this.closed = true;
    this.stopHelloTimer();
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

  private resumeBucket(): TokenBucket {
    if (!this.resumes) this.resumes = new TokenBucket(this.deps.resumesPerSecond, MAX_RESUME_STREAMS);
    return this.resumes;
  }

  private stopHelloTimer(): void {
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
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
    this.stopHelloTimer();
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
        const decision = await this.deps.sessionCreateLimiter.check(this.address);
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
      const binding = new SocketBinding(this.ws, this.deps, sessionId);
      connection = new ClientConnection(sessionId, binding, this.deps.streams, this.deps.sendBufferBytes, binding);
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
