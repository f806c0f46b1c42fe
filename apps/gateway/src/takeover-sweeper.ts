import type { Logger, StreamStore } from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import { ErrorCode, type StreamError } from "@chatgrid/protocol";
import type { AiBalancer } from "./ai-balancer";
import type { GatewayMetrics } from "./metrics";

export interface TakeoverSweeperOptions {
  store: StreamStore;
  balancer: AiBalancer;
  intervalMs: number;
  maxAttempts: number;
  log: Logger;
  metrics: GatewayMetrics;
  events: EventProducer;
}

/**
 * docs/architecture.md invariant 5. Every gateway looks for streams past their watch deadline (a lapsed lease, or a dispatch
 * that never got claimed). The takeover script lets exactly one gateway bump the attempt; that gateway
 * re-dispatches the new attempt to another AI node, or ends the stream with `done` + error when it cannot.
 */
export class TakeoverSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: TakeoverSweeperOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sweep(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const due = await this.options.store.due(Date.now());
      await Promise.all(due.map((streamId) => this.handle(streamId)));
    } catch {
      // Redis away: the next sweep tries again.
    } finally {
      this.running = false;
    }
  }

  private async handle(streamId: string): Promise<void> {
    const { store, balancer, log, metrics } = this.options;
    const result = await store.takeOver(streamId);
    if (result.status !== "takeover") return;
    const { attempt, previousNode } = result;
    if (result.cancelRequested) {
      metrics.takeovers.inc({ result: "cancelled" });
      return this.end(streamId, attempt, "cancelled");
    }
    if (attempt > this.options.maxAttempts) {
      metrics.takeovers.inc({ result: "failed" });
      log.warn({ streamId, attempt }, "stream failed: attempts exhausted");
      return this.end(streamId, attempt, "error", {
        code: ErrorCode.streamFailed,
        message: `the stream was lost ${attempt - 1} times and could not be finished`,
      });
    }
    const dispatched = await balancer.dispatch({ streamId, attempt }, previousNode || undefined);
    if (dispatched.ok) {
      metrics.takeovers.inc({ result: "redispatched" });
      const meta = await store.meta(streamId);
      if (meta) {
        this.options.events.emit({
          type: "stream.taken_over",
          sessionId: meta.sessionId,
          streamId,
          attempt,
          fromNode: previousNode || "(none)",
          toNode: dispatched.node,
        });
      }
      log.info({ streamId, attempt, from: previousNode, to: dispatched.node }, "stream taken over");
      return;
    }
    metrics.takeovers.inc({ result: "failed" });
    return this.end(streamId, attempt, "error", {
      code: ErrorCode.streamFailed,
      message: "the stream's AI node was lost and no other AI node could take it over",
    });
  }

  /** Writes the final `done` under the attempt this gateway holds (its fencing token). */
  private async end(streamId: string, attempt: number, finishReason: "cancelled" | "error", error?: StreamError) {
    const meta = await this.options.store.meta(streamId);
    if (!meta) return;
    // The meta's seq is that of the last start, reset, done or claim: chunks after it are counted in the text.
    const last = (await this.options.store.text(streamId))?.seq ?? meta.seq;
    const outcome = await this.options.store.append(
      streamId,
      attempt,
      meta.sessionId,
      last + 1,
      { kind: "done", finishReason, ...(error ? { error } : {}) },
      meta.slots,
    );
    if (!outcome.ok) return;
    const ids = { sessionId: meta.sessionId, streamId, attempt };
    if (error) this.options.events.emit({ type: "stream.failed", ...ids, error });
    else
      this.options.events.emit({
        type: "stream.cancelled",
        ...ids,
        aiNode: meta.node ?? "(none)",
        chunks: 0,
        durationMs: 0,
      });
  }
}
