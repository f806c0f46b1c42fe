import { setTimeout as sleep } from "node:timers/promises";
import type { ConversationStore, Logger, StreamEventInput, StreamStore } from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import { ErrorCode, type FinishReason, type Usage } from "@chatgrid/protocol";
import { Coalescer } from "./coalescer";
import type { AiMetrics } from "./metrics";
import { type Provider, ProviderError } from "./providers/provider";

/** Why a run was stopped from outside: a cancel command, a newer attempt took over, or this node shuts down. */
export type StopReason = "cancel" | "lost" | "shutdown";

export interface StreamRunDeps {
  store: StreamStore;
  conversations: ConversationStore;
  provider: Provider;
  node: string;
  coalesceMs: number;
  publishRetryMs: number;
  log: Logger;
  metrics: AiMetrics;
  events: EventProducer;
}

/** The stream is no longer ours to write (fenced by a newer attempt, ended, or gone). */
class LostStream extends Error {}

/**
 * One claimed attempt of one stream: start (or continue / reset after a takeover), provider tokens coalesced into
 * chunks, then exactly one `done`. Every write goes through the fenced append script, so a node that lost its lease
 * can never add to a stream that another node now runs.
 */
export class StreamRun {
  private readonly controller = new AbortController();
  private stopReason: StopReason | undefined;
  private sessionId = "";
  private seq = -1;
  private readonly startedAt = performance.now();
  private firstChunkAt: number | undefined;
  private chunks = 0;

  constructor(
    readonly streamId: string,
    readonly attempt: number,
    private readonly deps: StreamRunDeps,
  ) {}

  stop(reason: StopReason): void {
    this.stopReason ??= reason;
    this.controller.abort(new DOMException(`stream ${reason}`, "AbortError"));
  }

  /** Runs to the end; never throws (a failure is logged, and the lease left to lapse so a gateway takes over). */
  async run(cancelRequested: boolean): Promise<void> {
    const { store, log } = this.deps;
    let outcome = "failed";
    let coalescer: Coalescer | undefined;
    try {
      const meta = await store.meta(this.streamId);
      if (!meta) return;
      this.sessionId = meta.sessionId;
      this.seq = meta.seq;
      if (cancelRequested) {
        if (this.seq < 0) await this.append(this.startEvent(meta.conversationId, meta.messageId));
        await this.append({ kind: "done", finishReason: "cancelled" });
        outcome = "cancelled";
        this.deps.events.emit({ type: "stream.cancelled", ...this.ids(), ...this.measures() });
        return;
      }
      const prompt = await this.deps.conversations.promptUpTo(meta.conversationId, meta.userMessageId);
      let skip = 0;
      let mode: "fresh" | "continued" | "restarted" = "fresh";
      if (this.seq < 0) {
        await this.append(this.startEvent(meta.conversationId, meta.messageId));
      } else {
        // A takeover: continue seamlessly when the provider repeats itself, else void the partial text.
        const snapshot = await store.snapshot(this.streamId);
        const partial = snapshot?.content.length ?? 0;
        mode = this.deps.provider.deterministic ? "continued" : "restarted";
        if (this.deps.provider.deterministic) skip = partial;
        else if (partial > 0) await this.append({ kind: "reset", aiNode: this.deps.node });
      }
      this.deps.events.emit({ type: "stream.started", ...this.ids(), aiNode: this.deps.node, mode });
      coalescer = new Coalescer(this.deps.coalesceMs, (delta) => this.appendChunk(delta));
      let finish: { finishReason: FinishReason; usage?: Usage } | undefined;
      for await (const event of this.deps.provider.stream({ messages: prompt, signal: this.controller.signal })) {
        if (event.type === "finish") {
          finish = { finishReason: event.finishReason, usage: event.usage };
          continue;
        }
        let text = event.text;
        if (skip > 0) {
          const skipped = Math.min(skip, text.length);
          text = text.slice(skipped);
          skip -= skipped;
        }
        coalescer.push(text);
        // Backpressure: a slow Redis slows the provider loop instead of growing a queue.
        if (coalescer.backlog > 8) await coalescer.settled();
      }
      await coalescer.drain();
      if (!finish) throw new ProviderError("provider_incomplete", "the provider ended without a finish reason");
      await this.append({
        kind: "done",
        finishReason: finish.finishReason,
        usage: finish.usage,
        aiNode: this.deps.node,
      });
      outcome = finish.finishReason;
      this.deps.events.emit({
        type: "stream.completed",
        ...this.ids(),
        ...this.measures(),
        finishReason: finish.finishReason === "length" ? "length" : "stop",
        ...(finish.usage ? { usage: finish.usage } : {}),
      });
    } catch (error) {
      outcome = await this.finishAfter(error, coalescer);
    } finally {
      const seconds = (performance.now() - this.startedAt) / 1000;
      this.deps.metrics.streamsFinished.inc({ outcome });
      this.deps.metrics.streamDuration.observe(seconds);
      log.info({ streamId: this.streamId, attempt: this.attempt, outcome, seconds }, "stream run ended");
    }
  }

  private async finishAfter(error: unknown, coalescer: Coalescer | undefined): Promise<string> {
    const { log } = this.deps;
    if (error instanceof LostStream || this.stopReason === "lost") {
      coalescer?.discard();
      return "lost";
    }
    if (this.stopReason === "shutdown") {
      coalescer?.discard();
      // Hand the stream over at once instead of waiting for the lease to lapse.
      await this.deps.store.release(this.streamId, this.attempt).catch(() => undefined);
      return "released";
    }
    try {
      // Keep the text produced before a cancel or a provider failure: it is part of the answer's history.
      await coalescer?.drain();
      if (this.stopReason === "cancel") {
        await this.append({ kind: "done", finishReason: "cancelled", aiNode: this.deps.node });
        this.deps.events.emit({ type: "stream.cancelled", ...this.ids(), ...this.measures() });
        return "cancelled";
      }
      const streamError =
        error instanceof ProviderError
          ? { code: error.code, message: error.message }
          : { code: ErrorCode.internal, message: error instanceof Error ? error.message : String(error) };
      if (!(error instanceof ProviderError)) log.error({ streamId: this.streamId, err: error }, "stream run failed");
      await this.append({ kind: "done", finishReason: "error", error: streamError, aiNode: this.deps.node });
      this.deps.events.emit({ type: "stream.failed", ...this.ids(), aiNode: this.deps.node, error: streamError });
      return "error";
    } catch (writeError) {
      if (writeError instanceof LostStream) return "lost";
      // Redis stayed away: leave the lease to lapse; a gateway takes over and the stream still ends with done.
      log.warn(
        { streamId: this.streamId, err: writeError },
        "could not write the end of a stream; leaving it to takeover",
      );
      return "abandoned";
    }
  }

  private ids() {
    return { sessionId: this.sessionId, streamId: this.streamId, attempt: this.attempt };
  }

  /** What the completion events report about this attempt. */
  private measures() {
    const now = performance.now();
    return {
      aiNode: this.deps.node,
      chunks: this.chunks,
      durationMs: Math.round(now - this.startedAt),
      ...(this.firstChunkAt !== undefined
        ? { timeToFirstChunkMs: Math.round(this.firstChunkAt - this.startedAt) }
        : {}),
    };
  }

  private startEvent(conversationId: string, messageId: string): StreamEventInput {
    return { kind: "start", conversationId, messageId, aiNode: this.deps.node };
  }

  private async appendChunk(delta: string): Promise<void> {
    await this.append({ kind: "chunk", delta });
    this.chunks++;
    this.deps.metrics.chunksPublished.inc();
    if (this.firstChunkAt === undefined) {
      this.firstChunkAt = performance.now();
      this.deps.metrics.timeToFirstChunk.observe((this.firstChunkAt - this.startedAt) / 1000);
    }
  }

  /** One fenced, idempotent append, retried while Redis is away (up to PUBLISH_RETRY_MS). */
  private async append(event: StreamEventInput): Promise<void> {
    const seq = this.seq + 1;
    const deadline = Date.now() + this.deps.publishRetryMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        const outcome = await this.deps.store.append(this.streamId, this.attempt, this.sessionId, seq, event);
        if (!outcome.ok) {
          this.stop("lost");
          throw new LostStream(outcome.reason);
        }
        this.seq = outcome.seq;
        return;
      } catch (error) {
        if (error instanceof LostStream || Date.now() + delay > deadline || this.stopReason === "shutdown") throw error;
        this.deps.metrics.publishRetries.inc();
        await sleep(delay);
      }
    }
  }
}
