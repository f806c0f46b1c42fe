import { setTimeout as sleep } from "node:timers/promises";
import type {
  ConversationStore,
  Logger,
  PromptMessage,
  SlotKeys,
  StreamEventInput,
  StreamMeta,
  StreamStore,
} from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import { ErrorCode, type Usage } from "@chatgrid/protocol";
import { Coalescer } from "./coalescer";
import type { AiMetrics } from "./metrics";
import { type Provider, ProviderError } from "./providers/provider";
import { type AnswerErrorCode, errorDetail, userError } from "./user-errors";

/** Why a run was stopped from outside: a cancel command, a newer attempt took over, or this node shuts down. */
export type StopReason = "cancel" | "lost" | "shutdown";

/** Which bound ended an answer early: the length bounds end it with "length", the duration with "timeout". */
export type AnswerBound = "tokens" | "chars" | "duration";

/** The bounds on every answer and its prompt (docs/configuration.md "AI node"); the duration is the store's. */
export interface AnswerLimits {
  /** Provider token events per answer (MAX_ANSWER_TOKENS). */
  maxTokens: number;
  /** Characters of the stored text (MAX_ANSWER_CHARS), whatever the provider's token sizes. */
  maxChars: number;
  /** The context budget (CONTEXT_MAX_CHARS / CONTEXT_MAX_MESSAGES): the oldest turns are dropped first. */
  context: { maxChars: number; maxMessages: number };
}

export interface StreamRunDeps {
  store: StreamStore;
  conversations: Pick<ConversationStore, "promptUpTo">;
  provider: Provider;
  node: string;
  coalesceMs: number;
  publishRetryMs: number;
  log: Logger;
  metrics: AiMetrics;
  events: EventProducer;
  limits: AnswerLimits;
}

type AnswerFinish = { finishReason: "stop" | "length" | "timeout"; usage?: Usage };

/** What the dispatch's claim gave its run (apps/ai/src/app.ts). */
export interface ClaimedRun {
  /** The stream's meta as the claim left it. */
  meta: StreamMeta;
  /** The claim wrote the stream's `start` (the meta is at seq 0). */
  started: boolean;
  /** The prompt, read beside the claim with the dispatch's ids (which the claim checked against the stream). */
  prompt?: Promise<PromptMessage[]>;
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
  /** Set when a bound stopped the answer (only while nothing else had stopped it). */
  private bound: AnswerBound | undefined;
  private sessionId = "";
  /** The stream's concurrency slots, freed by its `done`. */
  private slots: SlotKeys | undefined;
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

  /** A bound was reached: stop the provider request; the answer then ends with what it has. */
  private reachBound(bound: AnswerBound): void {
    if (this.stopReason !== undefined || this.bound !== undefined) return;
    this.bound = bound;
    this.deps.metrics.answerBounds.inc({ bound });
    this.controller.abort(new DOMException(`answer bound: ${bound}`, "AbortError"));
  }

  /**
   * Runs to the end; never throws (a failure is logged, and the lease left to lapse so a gateway takes over).
   * `claimed` is what the dispatch's claim gave (the meta, whether it wrote `start`, the prompt read beside it): round
   * trips fewer before the first token; without it the meta is read here.
   */
  async run(cancelRequested: boolean, claimed?: ClaimedRun): Promise<void> {
    const { store, log } = this.deps;
    let outcome = "failed";
    let coalescer: Coalescer | undefined;
    try {
      const meta = claimed?.meta ?? (await store.meta(this.streamId));
      if (!meta) return;
      this.sessionId = meta.sessionId;
      this.seq = meta.seq;
      this.slots = meta.slots;
      const started = claimed?.started === true;
      if (cancelRequested) {
        if (this.seq < 0) await this.append(this.startEvent(meta.conversationId, meta.messageId));
        await this.append({ kind: "done", finishReason: "cancelled" });
        outcome = "cancelled";
        this.deps.events.emit({ type: "stream.cancelled", ...this.ids(), ...this.measures() });
        return;
      }
      // The clock runs from the stream's creation, so a takeover does not restart it.
      const deadline = (meta.createdAt > 0 ? meta.createdAt : Date.now()) + store.options.maxDurationMs;
      let skip = 0;
      /** Characters of the stored text: after a seamless takeover, what the earlier attempts wrote counts too. */
      let written = 0;
      let mode: "fresh" | "continued" | "restarted" = "fresh";
      // The prompt is read while `start` is written (or beside the claim that wrote it): neither needs the other, and
      // the first token waits for both (docs/benchmarks.md, "Scenarios"). A read that failed early (Redis away
      // meanwhile) is read again once the writes before it went through, where it used to be read; a failure then
      // surfaces in answer().
      const readPrompt = () =>
        this.deps.conversations.promptUpTo(meta.conversationId, meta.userMessageId, this.deps.limits.context);
      const early = claimed?.prompt ?? readPrompt();
      early.catch(() => undefined);
      if (started) {
        // The claim wrote `start`: nothing to write before the first chunk.
      } else if (this.seq < 0) {
        await this.append(this.startEvent(meta.conversationId, meta.messageId));
      } else if (Date.now() >= deadline) {
        // Taken over after its time ran out: keep the text as it stands and end it below.
        mode = "continued";
      } else {
        // A takeover: continue seamlessly when the provider repeats itself, else void the partial text. With no
        // text to continue from (Redis evicted it) the answer starts over behind a reset, whatever the provider:
        // continuing from nothing would repeat what the clients already have.
        const snapshot = await store.snapshot(this.streamId);
        const partial = snapshot?.content.length ?? 0;
        mode = this.deps.provider.deterministic && snapshot ? "continued" : "restarted";
        if (mode === "continued") {
          skip = partial;
          written = partial;
        } else if (partial > 0 || !snapshot) await this.append({ kind: "reset", aiNode: this.deps.node });
      }
      this.deps.events.emit({ type: "stream.started", ...this.ids(), aiNode: this.deps.node, mode });
      const active = new Coalescer(this.deps.coalesceMs, (delta) => this.appendChunk(delta));
      coalescer = active;
      const prompt = early.catch(() => readPrompt());
      prompt.catch(() => undefined);
      const finish = await this.answer(prompt, deadline, skip, written, active);
      await active.drain();
      await this.append({
        kind: "done",
        finishReason: finish.finishReason,
        ...(finish.usage ? { usage: finish.usage } : {}),
        aiNode: this.deps.node,
      });
      outcome = finish.finishReason;
      this.deps.events.emit({
        type: "stream.completed",
        ...this.ids(),
        ...this.measures(),
        finishReason: finish.finishReason,
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

  /**
   * Streams the provider's answer into the coalescer within the answer's bounds: at most `maxTokens` token events
   * and `maxChars` characters of stored text (cut exactly there, never inside a surrogate pair), and no later than
   * `deadline`. A bound aborts the provider request and ends the answer with the text it has.
   */
  private async answer(
    promptRead: Promise<PromptMessage[]>,
    deadline: number,
    skipChars: number,
    writtenChars: number,
    coalescer: Coalescer,
  ): Promise<AnswerFinish> {
    const { limits } = this.deps;
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      this.reachBound("duration");
      return { finishReason: "timeout" };
    }
    const timer = setTimeout(() => this.reachBound("duration"), remaining);
    let skip = skipChars;
    let written = writtenChars;
    let tokens = 0;
    let first = true;
    let finish: AnswerFinish | undefined;
    try {
      const prompt = await promptRead;
      for await (const event of this.deps.provider.stream({ messages: prompt, signal: this.controller.signal })) {
        if (event.type === "finish") {
          finish = { finishReason: event.finishReason, ...(event.usage ? { usage: event.usage } : {}) };
          continue;
        }
        // Counted before the skip: after a seamless takeover the regenerated tokens are the earlier attempt's.
        if (tokens >= limits.maxTokens) {
          this.reachBound("tokens");
          break;
        }
        tokens++;
        let text = event.text;
        if (skip > 0) {
          const skipped = Math.min(skip, text.length);
          text = text.slice(skipped);
          skip -= skipped;
        }
        if (written + text.length > limits.maxChars) {
          text = cutAt(text, limits.maxChars - written);
          coalescer.push(text);
          written += text.length;
          this.reachBound("chars");
          break;
        }
        written += text.length;
        coalescer.push(text);
        // The first text goes out at once, not after the coalescing window: it is what the user waits for
        // (docs/architecture.md invariant 9 holds: the same text, in order).
        if (first && text.length > 0) {
          first = false;
          coalescer.flush();
        }
        // Backpressure: a slow Redis slows the provider loop instead of growing a queue.
        if (coalescer.backlog > 8) await coalescer.settled();
      }
    } catch (error) {
      // A bound's abort surfaces as the provider's AbortError: the answer ends normally, below. A stream lost or
      // handed over meanwhile still ends as such.
      if (this.bound === undefined || error instanceof LostStream) throw error;
      if (this.stopReason === "lost" || this.stopReason === "shutdown") throw error;
    } finally {
      clearTimeout(timer);
    }
    // The provider had finished when the clock ran out (while its stream was closing): the answer is complete.
    if (finish !== undefined && this.bound === "duration") return finish;
    if (this.bound !== undefined) return { finishReason: this.bound === "duration" ? "timeout" : "length" };
    if (!finish) throw new ProviderError("provider_incomplete", "the provider ended without a finish reason");
    return finish;
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
      // Users get the code's fixed message; the detail (provider text, hosts, Redis errors) only goes to the log.
      const code: AnswerErrorCode = error instanceof ProviderError ? error.code : ErrorCode.internal;
      const streamError = userError(code);
      this.deps.metrics.streamFailures.inc({ code });
      log.warn(
        {
          streamId: this.streamId,
          attempt: this.attempt,
          code,
          detail: errorDetail(error),
          ...(error instanceof ProviderError ? {} : { err: error }),
        },
        "answer failed",
      );
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
        const outcome = await this.deps.store.append(
          this.streamId,
          this.attempt,
          this.sessionId,
          seq,
          event,
          this.slots,
        );
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

/** The first `length` characters of `text`, one fewer when the cut would split a surrogate pair. */
function cutAt(text: string, length: number): string {
  const cut = text.slice(0, Math.max(0, length));
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}
