import { type ChannelSubscriber, channels, decodeChannelMessage } from "@chatgrid/broker";
import type { ClientConnection } from "./client-connection";

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
  private subscriber: ChannelSubscriber | undefined;

  attach(subscriber: ChannelSubscriber): void {
    this.subscriber = subscriber;
    subscriber.on("resubscribed", () => {
      for (const entry of this.sessions.values()) for (const connection of entry.connections) connection.catchUp();
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
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

  /** The hot path: one decode of the header per message, the frame forwarded as it came to each socket. */
  onChannelMessage(channel: string, payload: string): void {
    if (!channel.startsWith(CHANNEL_PREFIX)) return;
    const entry = this.sessions.get(channel.slice(CHANNEL_PREFIX.length));
    if (!entry) return;
    const message = decodeChannelMessage(payload);
    if (!message) return;
    for (const connection of entry.connections) connection.deliver(message);
  }
}
