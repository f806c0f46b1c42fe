import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import type { Logger } from "./logger";

/**
 * One pub/sub connection per node, with the channel set kept here rather than trusted to the client library.
 * On every (re)connect it subscribes to every channel again and checks the count Redis confirms, then emits
 * `resubscribed` so owners can fill what they missed from history: a silent re-subscribe failure would
 * otherwise leave sockets waiting forever for events that were published while the link was down.
 */
export class ChannelSubscriber extends EventEmitter<{ resubscribed: []; lost: [] }> {
  private readonly channels = new Set<string>();
  private wasReady = false;

  constructor(
    private readonly redis: Redis,
    private readonly onMessage: (channel: string, message: string) => void,
    private readonly log: Logger,
  ) {
    super();
    redis.on("message", (channel: string, message: string) => this.onMessage(channel, message));
    redis.on("ready", () => void this.restore());
    redis.on("close", () => {
      if (this.wasReady) this.emit("lost");
      this.wasReady = false;
    });
  }

  get ready(): boolean {
    return this.redis.status === "ready";
  }

  /** Resolves once Redis confirmed the subscription; rejects while Redis is unreachable (the channel is kept). */
  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
    await this.redis.subscribe(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    if (this.ready) await this.redis.unsubscribe(channel).catch(() => undefined);
  }

  private async restore(): Promise<void> {
    try {
      if (this.channels.size > 0) {
        const count = (await this.redis.subscribe(...this.channels)) as number;
        if (count < this.channels.size) throw new Error(`Redis confirmed ${count} of ${this.channels.size} channels`);
      }
      this.wasReady = true;
      this.emit("resubscribed");
    } catch (error) {
      this.log.error({ err: error }, "re-subscribe failed; reconnecting");
      // Drop the connection so the retry strategy reconnects and we try again, rather than run half-subscribed.
      this.redis.disconnect(true);
    }
  }
}
