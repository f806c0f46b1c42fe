import type { Logger, SessionStore, StreamStore } from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import { type ClientFrame, ClientFrameSchema, CloseCode, ErrorCode, type ResumePoint } from "@chatgrid/protocol";
import type { WebSocket } from "ws";
import type { GatewayMetrics } from "../metrics";
import { ClientConnection, type Transport } from "./client-connection";
import { TokenBucket } from "./frame-rate";
import type { SessionHub } from "./session-hub";

export interface SocketHandlerDeps {
  node: string;
  sessions: SessionStore;
  streams: StreamStore;
  hub: SessionHub;
  metrics: GatewayMetrics;
  log: Logger;
  events: EventProducer;
  helloTimeoutMs: number;
  sendBufferBytes: number;
  framesPerSecond: number;
  frameBurst: number;
}

/** Consecutive bad frames after which the socket is closed with 4400 instead of answered with `error`. */
const MAX_BAD_FRAMES = 5;
/** The WebSocket "try again later" code, used when Redis is away during hello. */
const TRY_AGAIN_LATER = 1013;

function transportOf(ws: WebSocket): Transport {
  return {
    send: (frame) => ws.send(frame),
    close: (code, reason) => ws.close(code, reason),
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get open() {
      return ws.readyState === ws.OPEN;
    },
  };
}

/**
 * The life of one socket: hello within the timeout, then resume/ping frames, each validated with the protocol
 * schemas. Frames are handled one after another, so a resume sent right behind hello waits for the welcome.
 */
export class SocketHandler {
  private connection: ClientConnection | undefined;
  private readonly helloTimer: NodeJS.Timeout;
  private queue: Promise<void> = Promise.resolve();
  private badFrames = 0;
  private readonly bucket: TokenBucket;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: SocketHandlerDeps,
  ) {
    this.bucket = new TokenBucket(deps.framesPerSecond, deps.frameBurst);
    this.helloTimer = setTimeout(() => this.close(CloseCode.helloTimeout, "no hello in time"), deps.helloTimeoutMs);
    deps.metrics.socketsOpen.inc();
  }

  onMessage(data: string | ArrayBuffer): void {
    if (this.closed) return;
    if (!this.bucket.take()) {
      this.close(CloseCode.rateLimited, "too many frames");
      return;
    }
    const frame = this.parse(data);
    if (!frame) return;
    this.badFrames = 0;
    // Hold live events of resumed streams from this moment, before any await (see prepareResume).
    if (frame.type === "resume") for (const p of frame.streams) this.connection?.prepareResume(p.streamId, p.afterSeq);
    this.queue = this.queue
      .then(() => this.handle(frame))
      .catch((error: unknown) => {
        this.deps.log.error({ err: error, sessionId: this.connection?.sessionId }, "socket frame failed");
        this.sendError(ErrorCode.internal, "internal error");
      });
  }

  onClose(code?: number): void {
    if (this.closed && !this.connection) return;
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
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
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
    else if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private async hello(token: string | undefined, resume: ResumePoint[]): Promise<void> {
    clearTimeout(this.helloTimer);
    let sessionId: string;
    let sessionToken: string;
    try {
      if (token) {
        const resolved = await this.deps.sessions.resolve(token);
        if (!resolved) return this.close(CloseCode.unauthorized, "unknown or expired token");
        sessionId = resolved;
        sessionToken = token;
      } else {
        ({ sessionId, token: sessionToken } = await this.deps.sessions.create());
      }
      if (this.closed) return;
      const connection = new ClientConnection(
        sessionId,
        transportOf(this.ws),
        this.deps.streams,
        this.deps.sendBufferBytes,
        {
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
        },
      );
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
      this.deps.hub.leave(this.connection);
      return;
    }
    this.deps.metrics.sessionsActive.set(this.deps.hub.sessionCount);
    this.deps.events.emit({ type: "session.opened", sessionId, via: "ws", created: !token });
    this.connection.sendControl({ type: "welcome", sessionId, token: sessionToken, node: this.deps.node });
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
        } catch {
          connection.releaseResume(streamId);
          this.sendError(ErrorCode.unavailable, "could not resume now; try again", streamId);
        }
      }),
    );
  }
}
