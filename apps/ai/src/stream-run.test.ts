import { setImmediate } from "node:timers/promises";
import {
  ConversationStore,
  connectRedis,
  createRedis,
  keys,
  newId,
  type PromptMessage,
  StreamStore,
  type StreamStoreOptions,
} from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import { type DoneFrame, DoneFrameSchema, type EventInput } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestRedis, type TestRedis } from "../../../packages/broker/src/test-redis";
import { createAiMetrics } from "./metrics";
import { createDemoProvider, type DemoProviderConfig, demoTokens } from "./providers/demo";
import { startFakeOpenAi } from "./providers/fake-openai-server";
import { createOpenAiProvider } from "./providers/openai";
import { type Provider, ProviderError, type ProviderErrorCode, type ProviderEvent } from "./providers/provider";
import { type AnswerLimits, StreamRun, type StreamRunDeps } from "./stream-run";
import { USER_ERROR_MESSAGES } from "./user-errors";

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startTestRedis();
  redis = createRedis(server.url, "test-stream-run");
  redis.on("error", () => undefined);
  await connectRedis(redis, 10_000);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const DEFAULT_LIMITS: AnswerLimits = {
  maxTokens: 4096,
  maxChars: 100_000,
  context: { maxChars: 24_000, maxMessages: 40 },
};

function makeStore(options: Partial<StreamStoreOptions> = {}): StreamStore {
  return new StreamStore(redis, { leaseMs: 5000, dispatchDeadlineMs: 10_000, ...options });
}

/** A queued stream for `message`, claimed by ai-1 as attempt 1 (what a dispatch does). */
async function claimedStream(store: StreamStore, message: string) {
  const sessionId = newId("sess");
  const turn = await new ConversationStore(redis, store).beginTurn(sessionId, message);
  expect((await store.claim(turn.streamId, 1, "ai-1")).status).toBe("claimed");
  return { sessionId, turn, streamId: turn.streamId };
}

/**
 * Attempt 1 (on ai-1) wrote `start` and `chunks`, then died; a gateway took the stream over and ai-2 claimed
 * attempt 2. Returns the text attempt 1 wrote.
 */
async function takenOver(store: StreamStore, stream: Awaited<ReturnType<typeof claimedStream>>, chunks: string[]) {
  const { streamId, sessionId, turn } = stream;
  let seq = 0;
  const start = { conversationId: turn.conversationId, messageId: turn.assistantMessageId, aiNode: "ai-1" };
  expect((await store.append(streamId, 1, sessionId, seq++, { kind: "start", ...start })).ok).toBe(true);
  for (const delta of chunks) {
    expect((await store.append(streamId, 1, sessionId, seq++, { kind: "chunk", delta })).ok).toBe(true);
  }
  await store.release(streamId, 1);
  expect(await store.takeOver(streamId)).toMatchObject({ status: "takeover", attempt: 2 });
  expect((await store.claim(streamId, 2, "ai-2")).status).toBe("claimed");
  return chunks.join("");
}

function recordingEvents(): EventProducer & { events: EventInput[] } {
  const events: EventInput[] = [];
  return {
    events,
    buffered: 0,
    dropped: 0,
    emit: (event) => {
      events.push(event);
    },
    stop: async () => {},
  };
}

/** A logger whose JSON lines the test can read. */
function capturingLogger() {
  const lines: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => lines.push(line) });
  return { log, lines };
}

interface Harness {
  run: StreamRun;
  events: EventInput[];
  lines: string[];
  metrics: ReturnType<typeof createAiMetrics>;
}

function harness(
  streamId: string,
  provider: Provider,
  store: StreamStore,
  overrides: Partial<StreamRunDeps> & { attempt?: number } = {},
): Harness {
  const { attempt = 1, ...deps } = overrides;
  const events = recordingEvents();
  const { log, lines } = capturingLogger();
  const metrics = createAiMetrics();
  const run = new StreamRun(streamId, attempt, {
    store,
    conversations: new ConversationStore(redis, store),
    provider,
    node: attempt === 1 ? "ai-1" : "ai-2",
    coalesceMs: 5,
    publishRetryMs: 1000,
    log,
    metrics,
    events,
    limits: DEFAULT_LIMITS,
    ...deps,
  });
  return { run, events: events.events, lines, metrics };
}

/** The stream's stored text, its `done` frame, and every frame it published. */
async function outcome(store: StreamStore, streamId: string) {
  const snapshot = await store.snapshot(streamId);
  expect(snapshot?.doneFrame).toBeDefined();
  const done: DoneFrame = DoneFrameSchema.parse(JSON.parse(snapshot?.doneFrame ?? "{}"));
  const frames = (await store.readAfter(streamId, -1)).map((event) => event.frame);
  return { text: snapshot?.content ?? "", done, frames };
}

interface ScriptedProvider extends Provider {
  /** The messages of every request. */
  readonly requests: PromptMessage[][];
  /** How many requests ended (their generator finalised: the upstream call is closed). */
  readonly closed: number;
  /** Whether the last request's signal was aborted when it ended. */
  readonly abortedAtClose: boolean;
}

/** A provider that plays `script`, recording its requests and whether each was closed. */
function scripted(
  script: (signal: AbortSignal) => AsyncGenerator<ProviderEvent>,
  deterministic = false,
): ScriptedProvider {
  const requests: PromptMessage[][] = [];
  let closed = 0;
  let abortedAtClose = false;
  return {
    name: "scripted",
    model: "scripted",
    deterministic,
    requests,
    get closed() {
      return closed;
    },
    get abortedAtClose() {
      return abortedAtClose;
    },
    async *stream(request) {
      requests.push(request.messages);
      try {
        yield* script(request.signal);
      } finally {
        closed++;
        abortedAtClose = request.signal.aborted;
      }
    },
  };
}

/** Tokens forever (one per event-loop turn), like a provider that ignores max_tokens. */
const endless = (text: (i: number) => string = (i) => `t${i} `) =>
  scripted(async function* (signal) {
    for (let i = 0; ; i++) {
      await setImmediate(undefined, { signal });
      yield { type: "token", text: text(i) };
    }
  });

/** The given tokens, then an error. */
const failing = (error: Error, tokens: string[] = ["Partial", " answer"]) =>
  scripted(async function* () {
    for (const text of tokens) yield { type: "token", text };
    throw error;
  });

const demo = (overrides: Partial<DemoProviderConfig> = {}) =>
  createDemoProvider({
    tokensPerSecond: 0,
    maxTokens: 30,
    maxAnswerTokens: 4096,
    seamlessTakeover: true,
    ...overrides,
  });

const completed = (events: EventInput[]) => events.find((event) => event.type === "stream.completed");

describe("StreamRun: the claim's meta", () => {
  it("a run given the meta its claim returned reads no meta of its own, and answers as one that reads it", async () => {
    const store = makeStore();
    const prompt = "five words please";
    const sessionId = newId("sess");
    const turn = await new ConversationStore(redis, store).beginTurn(sessionId, prompt);
    const claim = await store.claim(turn.streamId, 1, "ai-1");
    if (claim.status !== "claimed") throw new Error(`not claimed: ${claim.status}`);
    const reads = vi.spyOn(store, "meta");
    const { run } = harness(turn.streamId, demo(), store);
    await run.run(false, { meta: claim.meta, started: claim.started });
    expect(reads).not.toHaveBeenCalled();
    const { text, done } = await outcome(store, turn.streamId);
    expect(text).toBe(demoTokens([{ role: "user", content: prompt }], 30).join(""));
    expect(done).toMatchObject({ finishReason: "stop", aiNode: "ai-1" });
    reads.mockRestore();
  });
});

describe("StreamRun: a claim that wrote start, with the prompt read beside it", () => {
  it("writes no start of its own, answers from the prompt it was given, and its chunks follow seq 0", async () => {
    const store = makeStore();
    const prompt = "five words please";
    const sessionId = newId("sess");
    const conversations = new ConversationStore(redis, store);
    const turn = await conversations.beginTurn(sessionId, prompt);
    const claim = await store.claim(turn.streamId, 1, "ai-1", {
      sessionId,
      conversationId: turn.conversationId,
      messageId: turn.assistantMessageId,
      userMessageId: turn.userMessageId,
    });
    if (claim.status !== "claimed" || !claim.started) throw new Error(`not claimed and started: ${claim.status}`);
    const reads = vi.spyOn(store, "meta");
    const appends = vi.spyOn(store, "append");
    // Its own prompt read would fail: the answer can only come from the prompt the dispatch read.
    const { run } = harness(turn.streamId, demo(), store, {
      conversations: {
        promptUpTo: async () => {
          throw new Error("the run read its prompt again");
        },
      },
    });
    const given = conversations.promptUpTo(turn.conversationId, turn.userMessageId);
    await run.run(false, { meta: claim.meta, started: true, prompt: given });
    expect(reads).not.toHaveBeenCalled();
    expect(appends.mock.calls.map((call) => call[4].kind)).not.toContain("start");
    const events = await store.readAfter(turn.streamId, -1);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index));
    expect(events.filter((event) => event.frame.includes('"type":"start"'))).toHaveLength(1);
    const { text, done } = await outcome(store, turn.streamId);
    expect(text).toBe(demoTokens([{ role: "user", content: prompt }], 30).join(""));
    expect(done).toMatchObject({ finishReason: "stop", aiNode: "ai-1" });
    reads.mockRestore();
    appends.mockRestore();
  });
});

describe("StreamRun: answer bounds", () => {
  it("a [demo:tokens=999999] answer at full speed stops at MAX_ANSWER_TOKENS with length", async () => {
    const store = makeStore();
    const prompt = "[demo:tokens=999999] flood the node";
    const stream = await claimedStream(store, prompt);
    const { run, events, metrics } = harness(stream.streamId, demo({ maxAnswerTokens: 4096 }), store);
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    expect(text).toBe(demoTokens([{ role: "user", content: prompt }], 4096).join(""));
    expect(done).toMatchObject({ finishReason: "length", aiNode: "ai-1", usage: { completionTokens: 4096 } });
    expect(completed(events)).toMatchObject({ finishReason: "length", aiNode: "ai-1" });
    expect((await metrics.streamsFinished.get()).values).toContainEqual(
      expect.objectContaining({ labels: { outcome: "length" }, value: 1 }),
    );
  });

  it("stops a provider that goes past MAX_ANSWER_TOKENS: request aborted, text kept, length", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "count forever");
    const provider = endless();
    const { run, events, metrics } = harness(stream.streamId, provider, store, {
      limits: { ...DEFAULT_LIMITS, maxTokens: 5 },
    });
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    expect(text).toBe("t0 t1 t2 t3 t4 ");
    expect(done).toMatchObject({ finishReason: "length", aiNode: "ai-1" });
    expect(done.error).toBeUndefined();
    expect(provider.closed).toBe(1);
    expect(provider.abortedAtClose).toBe(true);
    expect(completed(events)).toMatchObject({ finishReason: "length" });
    expect((await metrics.answerBounds.get()).values).toContainEqual(
      expect.objectContaining({ labels: { bound: "tokens" }, value: 1 }),
    );
  });

  it("an answer of exactly MAX_ANSWER_TOKENS that the provider finishes itself keeps its own finish reason", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "five words");
    const provider = scripted(async function* () {
      for (const text of ["a", " b", " c", " d", " e"]) yield { type: "token", text };
      yield { type: "finish", finishReason: "stop", usage: { promptTokens: 2, completionTokens: 5 } };
    });
    const { run } = harness(stream.streamId, provider, store, { limits: { ...DEFAULT_LIMITS, maxTokens: 5 } });
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    expect(text).toBe("a b c d e");
    expect(done).toMatchObject({ finishReason: "stop", usage: { completionTokens: 5 } });
  });

  it("cuts the stored text exactly at MAX_ANSWER_CHARS, whatever the token sizes, and ends with length", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "big tokens");
    // One huge token: a provider's token size is no bound.
    const provider = scripted(async function* () {
      yield { type: "token", text: "abcd" };
      yield { type: "token", text: "x".repeat(1_000_000) };
      yield { type: "finish", finishReason: "stop" };
    });
    const { run, events, metrics } = harness(stream.streamId, provider, store, {
      limits: { ...DEFAULT_LIMITS, maxChars: 10 },
    });
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    expect(text).toBe("abcdxxxxxx");
    expect(done).toMatchObject({ finishReason: "length", aiNode: "ai-1" });
    expect(provider.closed).toBe(1);
    expect(completed(events)).toMatchObject({ finishReason: "length" });
    expect((await metrics.answerBounds.get()).values).toContainEqual(
      expect.objectContaining({ labels: { bound: "chars" }, value: 1 }),
    );
  });

  it("never cuts the text inside a surrogate pair", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "emoji");
    const { run } = harness(
      stream.streamId,
      endless(() => "a😀"),
      store,
      { limits: { ...DEFAULT_LIMITS, maxChars: 5 } },
    );
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    // 6 UTF-16 units would be "a😀a😀"; the 5th unit is half an emoji, so the cut lands one earlier.
    expect(text).toBe("a😀a");
    expect(done.finishReason).toBe("length");
  });

  it("stops a slow answer at STREAM_MAX_DURATION_MS from the stream's creation with timeout", async () => {
    const maxDurationMs = 400;
    const store = makeStore({ maxDurationMs });
    const prompt = "[demo:tokens=1000] a slow answer";
    const stream = await claimedStream(store, prompt);
    const meta = await store.meta(stream.streamId);
    const { run, events, metrics } = harness(stream.streamId, demo({ tokensPerSecond: 20 }), store);
    await run.run(false);
    const endedAfter = Date.now() - (meta?.createdAt ?? 0);
    const { text, done } = await outcome(store, stream.streamId);
    expect(done).toMatchObject({ finishReason: "timeout", aiNode: "ai-1" });
    expect(done.error).toBeUndefined();
    // The text produced so far is kept: a prefix of the full demo answer, some tokens in (20/s for 0.4 s).
    const full = demoTokens([{ role: "user", content: prompt }], 1000).join("");
    expect(text.length).toBeGreaterThan(0);
    expect(full.startsWith(text)).toBe(true);
    expect(text.length).toBeLessThan(full.length / 10);
    expect(endedAfter).toBeGreaterThanOrEqual(maxDurationMs - 5);
    expect(endedAfter).toBeLessThan(maxDurationMs + 1500);
    expect(completed(events)).toMatchObject({ finishReason: "timeout", aiNode: "ai-1" });
    expect((await metrics.streamsFinished.get()).values).toContainEqual(
      expect.objectContaining({ labels: { outcome: "timeout" }, value: 1 }),
    );
  });

  it("aborts the provider request at the duration bound even while it waits for a token", async () => {
    const store = makeStore({ maxDurationMs: 300 });
    const stream = await claimedStream(store, "a provider that stalls");
    const provider = scripted(async function* (signal) {
      yield { type: "token", text: "Thinking" };
      // Waits for the abort: a stalled upstream only ends when we hang up.
      await new Promise<void>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    });
    const { run } = harness(stream.streamId, provider, store);
    await run.run(false);
    const { text, done } = await outcome(store, stream.streamId);
    expect(text).toBe("Thinking");
    expect(done.finishReason).toBe("timeout");
    expect(provider.abortedAtClose).toBe(true);
  });

  it("after a seamless takeover the token and character counts include what the earlier attempt wrote", async () => {
    const prompt = "[demo:tokens=50] keep going on another node";
    const messages: PromptMessage[] = [{ role: "user", content: prompt }];
    const full = demoTokens(messages, 50);

    // Token bound: attempt 1 wrote 4 tokens; attempt 2 may add only 6 more for a total of 10.
    const store = makeStore();
    const byTokens = await claimedStream(store, prompt);
    const partial = await takenOver(store, byTokens, [full.slice(0, 2).join(""), full.slice(2, 4).join("")]);
    const first = harness(byTokens.streamId, demo(), store, {
      attempt: 2,
      limits: { ...DEFAULT_LIMITS, maxTokens: 10 },
    });
    await first.run.run(false);
    const tokensOutcome = await outcome(store, byTokens.streamId);
    expect(tokensOutcome.text).toBe(full.slice(0, 10).join(""));
    expect(tokensOutcome.text.startsWith(partial)).toBe(true);
    expect(tokensOutcome.done).toMatchObject({ finishReason: "length", aiNode: "ai-2" });
    expect(first.events).toContainEqual(expect.objectContaining({ type: "stream.started", mode: "continued" }));
    expect(tokensOutcome.frames.some((frame) => frame.includes('"type":"reset"'))).toBe(false);

    // Character bound: the snapshot's length counts, so the stored text ends exactly at the bound.
    const byChars = await claimedStream(store, prompt);
    const written = await takenOver(store, byChars, [full.slice(0, 4).join("")]);
    const second = harness(byChars.streamId, demo(), store, {
      attempt: 2,
      limits: { ...DEFAULT_LIMITS, maxChars: written.length + 7 },
    });
    await second.run.run(false);
    const charsOutcome = await outcome(store, byChars.streamId);
    expect(charsOutcome.text).toBe(full.join("").slice(0, written.length + 7));
    expect(charsOutcome.done.finishReason).toBe("length");
  });

  it("a takeover whose text Redis evicted starts over behind a reset, even with a provider that repeats itself", async () => {
    const prompt = "[demo:tokens=12] the text went missing";
    const full = demoTokens([{ role: "user", content: prompt }], 12);
    const store = makeStore();
    const stream = await claimedStream(store, prompt);
    await takenOver(store, stream, [full.slice(0, 3).join("")]);
    await redis.del(keys.streamText(stream.streamId, 2));
    const next = harness(stream.streamId, demo(), store, { attempt: 2 });
    await next.run.run(false);
    const { text, done, frames } = await outcome(store, stream.streamId);
    // Continuing from nothing would have stored the first 3 tokens once more after the ones clients have.
    expect(text).toBe(full.join(""));
    expect(done.finishReason).toBe("stop");
    // The history replays the start, then the reset (the chunks before it went with the old text), then the answer.
    expect(frames.map((frame) => JSON.parse(frame).type).slice(0, 3)).toEqual(["start", "reset", "chunk"]);
    expect(next.events).toContainEqual(expect.objectContaining({ type: "stream.started", mode: "restarted" }));
  });

  it("a takeover after the maximum duration ends at once with timeout, keeping the text (no reset)", async () => {
    const store = makeStore({ maxDurationMs: 1000 });
    const stream = await claimedStream(store, "an answer whose node died long ago");
    const partial = await takenOver(store, stream, ["Half an", " answer"]);
    // The stream was created before its maximum duration: the clock does not restart with the new attempt.
    await redis.hset(keys.streamMeta(stream.streamId), "createdAt", Date.now() - 5000);
    // Not deterministic: it would reset and start over if it were asked at all.
    const provider = endless();
    const { run, events } = harness(stream.streamId, provider, store, { attempt: 2 });
    await run.run(false);
    const { text, done, frames } = await outcome(store, stream.streamId);
    expect(text).toBe(partial);
    expect(done).toMatchObject({ finishReason: "timeout", aiNode: "ai-2" });
    expect(provider.requests).toHaveLength(0);
    expect(frames.some((frame) => frame.includes('"type":"reset"'))).toBe(false);
    expect(completed(events)).toMatchObject({ finishReason: "timeout", aiNode: "ai-2", attempt: 2 });
  });
});

describe("StreamRun: errors users see", () => {
  const leaks = ["sk-abc***xyz", "10.1.2.3:8000", "Incorrect API key", "ECONNREFUSED"];

  it.each([
    ["provider_error", "401 Incorrect API key provided: sk-abc***xyz. You can find your API key at platform."],
    ["provider_rate_limited", "429 Rate limit reached for org-secret on 10.1.2.3:8000"],
    ["provider_incomplete", "provider stream broke off before finish_reason: connect ECONNREFUSED 10.1.2.3:8000"],
    ["provider_timeout", "provider timed out: no next token within 300 ms (sk-abc***xyz)"],
  ] as [ProviderErrorCode, string][])(
    "%s: done carries the code and its fixed message, the detail goes to the log",
    async (code, detail) => {
      const store = makeStore();
      const prompt = "my secret prompt text 7f3a";
      const stream = await claimedStream(store, prompt);
      const { run, events, lines, metrics } = harness(stream.streamId, failing(new ProviderError(code, detail)), store);
      await run.run(false);
      const { text, done, frames } = await outcome(store, stream.streamId);
      expect(text).toBe("Partial answer");
      expect(done).toEqual({
        type: "done",
        streamId: stream.streamId,
        seq: expect.any(Number),
        finishReason: "error",
        error: { code, message: USER_ERROR_MESSAGES[code] },
        aiNode: "ai-1",
      });
      for (const leak of leaks) {
        for (const frame of frames) expect(frame).not.toContain(leak);
        expect(JSON.stringify(events)).not.toContain(leak);
      }
      expect(events).toContainEqual(
        expect.objectContaining({ type: "stream.failed", error: { code, message: USER_ERROR_MESSAGES[code] } }),
      );
      // The detail is logged at warn with the stream's id, never the prompt.
      const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(logged).toContainEqual(
        expect.objectContaining({
          level: 40,
          streamId: stream.streamId,
          code,
          detail: expect.stringContaining(detail),
        }),
      );
      expect(lines.join("\n")).not.toContain("7f3a");
      expect((await metrics.streamFailures.get()).values).toEqual([
        expect.objectContaining({ labels: { code }, value: 1 }),
      ]);
    },
  );

  it("an internal fault (Redis error text, key names) ends with a generic internal_error", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "hello");
    const { run, lines, metrics } = harness(stream.streamId, demo(), store, {
      conversations: {
        promptUpTo: async () => {
          throw new Error("ERR wrong type for key cg:conv:abc:msgs on 10.1.2.3:8000");
        },
      },
    });
    await run.run(false);
    const { done, frames } = await outcome(store, stream.streamId);
    expect(done.error).toEqual({ code: "internal_error", message: USER_ERROR_MESSAGES.internal_error });
    expect(frames.join("\n")).not.toMatch(/cg:conv|10\.1\.2\.3|wrong type/);
    expect(lines.join("\n")).toContain("wrong type for key");
    expect((await metrics.streamFailures.get()).values).toEqual([
      expect.objectContaining({ labels: { code: "internal_error" }, value: 1 }),
    ]);
  });

  it("an OpenAI error body with a masked key, or a refused connection, never reaches the done frame", async () => {
    const fake = await startFakeOpenAi((ex) => {
      ex.res.writeHead(401, { "Content-Type": "application/json" });
      ex.res.end(
        JSON.stringify({
          error: { message: "Incorrect API key provided: sk-abc***xyz", type: "invalid_request_error" },
        }),
      );
    });
    const closed = await startFakeOpenAi(() => {});
    const refusedUrl = closed.baseUrl;
    await closed.close();
    try {
      for (const baseUrl of [fake.baseUrl, refusedUrl]) {
        const provider = createOpenAiProvider({
          baseUrl,
          apiKey: "sk-abc123xyz",
          model: "fake-model",
          firstTokenTimeoutMs: 2000,
          interTokenTimeoutMs: 2000,
          maxRetries: 0,
        });
        const store = makeStore();
        const stream = await claimedStream(store, "hi");
        const { run, lines } = harness(stream.streamId, provider, store);
        await run.run(false);
        const { done, frames } = await outcome(store, stream.streamId);
        expect(done.error).toEqual({ code: "provider_error", message: USER_ERROR_MESSAGES.provider_error });
        const port = new URL(baseUrl).port;
        for (const frame of frames) {
          expect(frame).not.toMatch(/sk-abc|Incorrect|ECONNREFUSED|127\.0\.0\.1/);
          expect(frame).not.toContain(`:${port}`);
        }
        // The operator still learns what happened.
        expect(lines.join("\n")).toMatch(baseUrl === refusedUrl ? /ECONNREFUSED/ : /Incorrect API key/);
      }
    } finally {
      await fake.close();
    }
  });
});

describe("StreamRun: context budget", () => {
  it("asks for the prompt within CONTEXT_MAX_CHARS / CONTEXT_MAX_MESSAGES", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "hello");
    const budgets: unknown[] = [];
    const { run } = harness(stream.streamId, demo(), store, {
      limits: { ...DEFAULT_LIMITS, context: { maxChars: 1234, maxMessages: 7 } },
      conversations: {
        promptUpTo: async (_conversationId, _userMessageId, ...budget: unknown[]) => {
          budgets.push(...budget);
          return [{ role: "user", content: "hello" }];
        },
      },
    });
    await run.run(false);
    expect(budgets).toEqual([{ maxChars: 1234, maxMessages: 7 }]);
    expect((await outcome(store, stream.streamId)).done.finishReason).toBe("stop");
  });

  it("the provider gets the newest turns within the budget, and always the current message", async () => {
    const store = makeStore();
    const conversations = new ConversationStore(redis, store);
    const sessionId = newId("sess");
    // Ten finished turns of 20-character messages, then the question being answered.
    let conversationId: string | undefined;
    for (let i = 0; i < 10; i++) {
      const turn = await conversations.beginTurn(
        sessionId,
        `question ${String(i).padStart(2, "0")} ........`,
        conversationId,
      );
      conversationId = turn.conversationId;
      const harnessed = harness(turn.streamId, demo({ maxTokens: 3 }), store);
      expect((await store.claim(turn.streamId, 1, "ai-1")).status).toBe("claimed");
      await harnessed.run.run(false);
    }
    const current = await conversations.beginTurn(sessionId, "the current question", conversationId);
    expect((await store.claim(current.streamId, 1, "ai-1")).status).toBe("claimed");
    const provider = scripted(async function* () {
      yield { type: "finish", finishReason: "stop" };
    });
    const budget = { maxChars: 120, maxMessages: 5 };
    const { run } = harness(current.streamId, provider, store, { limits: { ...DEFAULT_LIMITS, context: budget } });
    await run.run(false);
    const [prompt] = provider.requests;
    expect(prompt).toBeDefined();
    const sent = prompt ?? [];
    expect(sent.length).toBeLessThanOrEqual(budget.maxMessages);
    expect(sent.reduce((sum, message) => sum + message.content.length, 0)).toBeLessThanOrEqual(budget.maxChars);
    expect(sent.at(-1)).toEqual({ role: "user", content: "the current question" });
    // Newest first kept: what was sent before the current message is the tail of the history.
    expect(sent.at(-3)?.content).toBe("question 09 ........");

    // A current message at the bound on its own still goes, alone.
    const alone = await conversations.beginTurn(sessionId, "y".repeat(200), conversationId);
    expect((await store.claim(alone.streamId, 1, "ai-1")).status).toBe("claimed");
    const second = harness(alone.streamId, provider, store, { limits: { ...DEFAULT_LIMITS, context: budget } });
    await second.run.run(false);
    expect(provider.requests[1]).toEqual([{ role: "user", content: "y".repeat(200) }]);
  });
});

describe("StreamRun: the first token", () => {
  it("writes the first text at once and coalesces the ones after it, with the same text", async () => {
    const store = makeStore();
    const stream = await claimedStream(store, "first token first");
    const provider = scripted(async function* () {
      for (const text of ["Hello", ",", " world"]) yield { type: "token", text };
      yield { type: "finish", finishReason: "stop" };
    });
    // A window far longer than the test: only the first text may go out before the final drain.
    const { run } = harness(stream.streamId, provider, store, { coalesceMs: 60_000 });
    await run.run(false);
    const { text, frames } = await outcome(store, stream.streamId);
    expect(text).toBe("Hello, world");
    const chunks = frames
      .map((f) => JSON.parse(f) as { type: string; delta?: string })
      .filter((f) => f.type === "chunk");
    expect(chunks.map((c) => c.delta)).toEqual(["Hello", ", world"]);
  });
});
