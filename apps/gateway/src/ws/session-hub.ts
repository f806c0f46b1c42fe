import {
  type ChannelDropReason,
  channels,
  checkChannelFrame,
  decodeChannelMessage,
  type Logger,
} from "@chatgrid/broker";
import type { GatewayMetrics } from "../metrics";
import type { ClientConnection } from "./client-connection";

/** What the hub needs of the node's pub/sub connection (a ChannelSubscriber; tests may pass a fake). */
export interface HubSubscriber {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  on(event: "resubscribed", listener: () => void): unknown;
}

interface SessionEntry {
  connections: Set<ClientConnection>;
  /** Resolves when Redis confirmed the session channel; every joiner waits on it before reading history. */
  subscribed: Promise<void>;
}

const CHANNEL_PREFIX = channels.session("");

/**
 * Sessions with a socket on this gateway. One channel per session, subscribed while the session has a socket here,
 * shared by all of its sockets: no gateway receives the chunks of sessions it does not serve.
 */
export class SessionHub {
  private readonly sessions = new Map<string, SessionEntry>();
  private subscriber: HubSubscriber | undefined;

  /** `dropped`: a channel message that was not forwarded (see channelDropReporter). */
  constructor(private readonly options: { dropped?: (reason: ChannelDropReason, channel: string) => void } = {}) {}

  attach(subscriber: HubSubscriber): void {
    this.subscriber = subscriber;
    subscriber.on("resubscribed", () => {
      for (const entry of this.sessions.values()) for (const connection of entry.connections) connection.catchUp();
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Sockets of the session on this gateway (joined or joining). */
  socketCount(sessionId: string): number {
    return this.sessions.get(sessionId)?.connections.size ?? 0;
  }

  /** Adds a socket; resolves once its session's channel is confirmed subscribed (rejects if Redis is away). */
  async join(connection: ClientConnection): Promise<void> {
    const subscriber = this.subscriber;
    if (!subscriber) throw new Error("hub has no subscriber");
    let entry = this.sessions.get(connection.sessionId);
    if (!entry) {
      const channel = channels.session(connection.sessionId);
      entry = { connections: new Set(), subscribed: subscriber.subscribe(channel) };
      this.sessions.set(connection.sessionId, entry);
      const created = entry;
      entry.subscribed.catch(() => {
        if (this.sessions.get(connection.sessionId) === created && created.connections.size === 0) {
          this.sessions.delete(connection.sessionId);
          void subscriber.unsubscribe(channel);
        }
      });
    }
    entry.connections.add(connection);
    try {
      await entry.subscribed;
    } catch (error) {
      this.leave(connection);
      throw error;
    }
  }

  leave(connection: ClientConnection): void {
    const entry = this.sessions.get(connection.sessionId);
    if (!entry?.connections.delete(connection)) return;
    if (entry.connections.size === 0) {
      this.sessions.delete(connection.sessionId);
      void this.subscriber?.unsubscribe(channels.session(connection.sessionId));
    }
  }

  /**
   * The hot path: the header decoded and the frame checked once per message (a JSON.parse and a few fields, see
   * checkChannelFrame), then forwarded as it came to each socket. Only well-formed events of the stream the header
   * names reach a browser; anything else is dropped and reported.
   */
  onChannelMessage(channel: string, payload: string): void {
    if (!channel.startsWith(CHANNEL_PREFIX)) return;
    const entry = this.sessions.get(channel.slice(CHANNEL_PREFIX.length));
    if (!entry) return;
    const message = decodeChannelMessage(payload);
    const reason = message ? checkChannelFrame(message) : "header";
    if (!message || reason) {
      this.options.dropped?.(reason ?? "header", channel);
      return;
    }
    for (const connection of entry.connections) connection.deliver(message);
  }
}

/** Logs a dropped channel message at most this often; the metric counts every one. */
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Counts dropped channel messages by reason and logs them, throttled: something publishing to session channels
 * that is not the append script is worth an operator's look, but a flood must not flood the log.
 */
export function channelDropReporter(
  metrics: Pick<GatewayMetrics, "channelMessagesDropped">,
  log: Logger,
  now: () => number = Date.now,
): (reason: ChannelDropReason, channel: string) => void {
  let lastLog = Number.NEGATIVE_INFINITY;
  let unlogged = 0;
  return (reason, channel) => {
    metrics.channelMessagesDropped.inc({ reason });
    unlogged++;
    const at = now();
    if (at - lastLog < DROP_LOG_INTERVAL_MS) return;
    log.warn({ reason, channel, dropped: unlogged }, "dropped channel messages that are not events of their stream");
    lastLog = at;
    unlogged = 0;
  };
}
