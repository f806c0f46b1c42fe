import { afterEach, describe, expect, it } from "vitest";
import { loadAiConfig } from "../config";
import {
  chunk,
  type FakeExchange,
  type FakeHandler,
  type FakeOpenAiServer,
  startFakeOpenAi,
  usageChunk,
} from "./fake-openai-server";
import { createProvider } from "./index";
import { createOpenAiProvider, type OpenAiProviderConfig } from "./openai";
import { type Provider, ProviderError, type ProviderEvent } from "./provider";

const messages = [
  { role: "user" as const, content: "Say hello" },
  { role: "assistant" as const, content: "Hi!" },
  { role: "user" as const, content: "Again, in two words" },
];

const servers: FakeOpenAiServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: FakeHandler): Promise<FakeOpenAiServer> {
  const server = await startFakeOpenAi(handler);
  servers.push(server);
  return server;
}

function providerFor(server: FakeOpenAiServer, overrides: Partial<OpenAiProviderConfig> = {}): Provider {
  return createOpenAiProvider({
    baseUrl: server.baseUrl,
    apiKey: "test-key",
    model: "fake-model",
    firstTokenTimeoutMs: 2_000,
    interTokenTimeoutMs: 2_000,
    maxRetries: 0,
    ...overrides,
  });
}

interface Outcome {
  events: ProviderEvent[];
  text: string;
  error: unknown;
}

/** Drains a stream, keeping what arrived before an error; `onEvent` may act mid-stream (abort, dawdle). */
async function run(
  provider: Provider,
  signal: AbortSignal = new AbortController().signal,
  onEvent: (event: ProviderEvent) => void | Promise<void> = () => {},
): Promise<Outcome> {
  const events: ProviderEvent[] = [];
  let error: unknown;
  try {
    for await (const event of provider.stream({ messages, signal })) {
      events.push(event);
      await onEvent(event);
    }
  } catch (err) {
    error = err;
  }
  const text = events.map((e) => (e.type === "token" ? e.text : "")).join("");
  return { events, text, error };
}

function expectProviderError(error: unknown, code: ProviderError["code"]): ProviderError {
  expect(error).toBeInstanceOf(ProviderError);
  const providerError = error as ProviderError;
  expect(providerError.code).toBe(code);
  return providerError;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Writes keep-alives every 50 ms until the client goes away; never sends another token. */
function keepAliveForever(ex: FakeExchange): void {
  const interval = setInterval(() => ex.keepAlive(), 50);
  ex.res.on("close", () => clearInterval(interval));
}

/** A complete, well-formed answer: role chunk with empty content, tokens, finish chunk, usage chunk, [DONE]. */
function sendAnswer(ex: FakeExchange, tokens: string[], finishReason = "stop", eol: "\r\n" | "\n" = "\r\n"): void {
  ex.startEvents();
  ex.data(chunk(""), eol);
  ex.keepAlive();
  for (const token of tokens) ex.data(chunk(token), eol);
  ex.data(chunk(null, finishReason), eol);
  ex.data(usageChunk(12, tokens.length), eol);
  ex.done(eol);
  ex.res.end();
}

describe("createOpenAiProvider", () => {
  it("describes itself", async () => {
    const server = await serve(() => {});
    const provider = providerFor(server);
    expect(provider).toMatchObject({ name: "openai", model: "fake-model", deterministic: false });
  });

  it("streams tokens, the finish reason and usage, and sends the expected request", async () => {
    const tokens = ["Hel", "lo", ",", " wor", "ld", "! ✓", " \n"];
    const server = await serve((ex) => sendAnswer(ex, tokens));
    const { events, text, error } = await run(providerFor(server, { temperature: 0.2, maxTokens: 64 }));

    expect(error).toBeUndefined();
    expect(text).toBe("Hello, world! ✓ \n");
    // The role chunk's empty content is not a token.
    expect(events.filter((e) => e.type === "token")).toHaveLength(tokens.length);
    expect(events.at(-1)).toEqual({
      type: "finish",
      finishReason: "stop",
      usage: { promptTokens: 12, completionTokens: 7 },
    });
    expect(events.filter((e) => e.type === "finish")).toHaveLength(1);

    expect(server.requests).toHaveLength(1);
    const [request] = server.requests;
    expect(request?.method).toBe("POST");
    expect(request?.url).toBe("/v1/chat/completions");
    expect(request?.headers.authorization).toBe("Bearer test-key");
    expect(request?.body).toMatchObject({
      model: "fake-model",
      messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_tokens: 64,
    });
  });

  it.each([
    ["length", "length"],
    ["content_filter", "stop"],
    ["tool_calls", "stop"],
  ] as const)("maps finish_reason %s to %s (LF line endings)", async (upstream, expected) => {
    const server = await serve((ex) => sendAnswer(ex, ["a", "b"], upstream, "\n"));
    const { events, error } = await run(providerFor(server));
    expect(error).toBeUndefined();
    expect(events.at(-1)).toEqual({
      type: "finish",
      finishReason: expected,
      usage: { promptTokens: 12, completionTokens: 2 },
    });
  });

  it("turns an error event mid-stream into provider_error with the provider's message", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("Partial"));
      ex.data(chunk(" answer"));
      ex.data({ error: { message: "model overloaded", type: "server_error" } });
      ex.res.end();
    });
    const { text, events, error } = await run(providerFor(server));
    expect(text).toBe("Partial answer");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expect(expectProviderError(error, "provider_error").message).toContain("model overloaded");
  });

  it("reports a stream cut before finish_reason as provider_incomplete", async () => {
    const server = await serve(async (ex) => {
      ex.startEvents();
      ex.data(chunk("One"));
      ex.data(chunk(" two"));
      await sleep(20); // let the tokens leave before the socket dies
      ex.cut();
    });
    const { text, events, error } = await run(providerFor(server));
    expect(text).toBe("One two");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expectProviderError(error, "provider_incomplete");
  });

  it("reports [DONE] without any finish_reason as provider_incomplete", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("Looks"));
      ex.data(chunk(" complete"));
      ex.data(usageChunk(3, 2));
      ex.done();
      ex.res.end();
    });
    const { text, events, error } = await run(providerFor(server));
    expect(text).toBe("Looks complete");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expectProviderError(error, "provider_incomplete");
  });

  it("still finishes (without usage) when the connection dies after finish_reason", async () => {
    const server = await serve(async (ex) => {
      ex.startEvents();
      ex.data(chunk("Done"));
      ex.data(chunk(null, "stop"));
      await sleep(20);
      ex.cut();
    });
    const { events, error } = await run(providerFor(server));
    expect(error).toBeUndefined();
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "stop" });
  });

  it("times out a stall where only keep-alives arrive, and hangs up on the server", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("Thinking"));
      ex.data(chunk("..."));
      keepAliveForever(ex);
    });
    const started = Date.now();
    const { text, error } = await run(providerFor(server, { interTokenTimeoutMs: 300 }));
    const elapsed = Date.now() - started;
    expect(text).toBe("Thinking...");
    expect(expectProviderError(error, "provider_timeout").message).toContain("300 ms");
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(4_000);
    await server.clientDisconnected;
  });

  it("does not count the consumer's time between tokens against the inter-token timeout", async () => {
    // Tokens come promptly (30 ms apart, in separate writes); the consumer takes 250 ms over each one.
    const server = await serve(async (ex) => {
      ex.startEvents();
      for (const token of ["a", " slow", " reader"]) {
        ex.data(chunk(token));
        await sleep(30);
      }
      ex.data(chunk(null, "stop"));
      ex.done();
      ex.res.end();
    });
    const { text, events, error } = await run(providerFor(server, { interTokenTimeoutMs: 150 }), undefined, (event) =>
      event.type === "token" ? sleep(250) : undefined,
    );
    expect(error).toBeUndefined();
    expect(text).toBe("a slow reader");
    expect(events.at(-1)).toEqual({ type: "finish", finishReason: "stop" });
  });

  it("times out when the server sends nothing at all before firstTokenTimeoutMs", async () => {
    const server = await serve(async (ex) => {
      await sleep(5_000);
      if (!ex.closed) sendAnswer(ex, ["too late"]);
    });
    const started = Date.now();
    const { events, error } = await run(providerFor(server, { firstTokenTimeoutMs: 300, maxRetries: 1 }));
    expect(events).toEqual([]);
    expectProviderError(error, "provider_timeout");
    expect(Date.now() - started).toBeLessThan(3_000);
    await server.clientDisconnected;
    // Our watchdog fired, so the SDK did not get to retry the timed-out attempt.
    expect(server.requests).toHaveLength(1);
  });

  it("times out when headers arrive but only keep-alives follow (first token never comes)", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("")); // role chunk, no content: not progress
      keepAliveForever(ex);
    });
    const { events, error } = await run(providerFor(server, { firstTokenTimeoutMs: 300 }));
    expect(events).toEqual([]);
    expect(expectProviderError(error, "provider_timeout").message).toContain("first token");
    await server.clientDisconnected;
  });

  it("maps a 429 to provider_rate_limited with Retry-After and the provider's message", async () => {
    const server = await serve((ex) => {
      ex.res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "1" });
      ex.res.end(
        JSON.stringify({
          error: { message: "Rate limit reached for fake-model", type: "requests", code: "rate_limit_exceeded" },
        }),
      );
    });
    const { events, error } = await run(providerFor(server, { maxRetries: 0 }));
    expect(events).toEqual([]);
    const rateLimited = expectProviderError(error, "provider_rate_limited");
    expect(rateLimited.retryAfterSeconds).toBe(1);
    expect(rateLimited.message).toContain("Rate limit reached for fake-model");
    expect(server.requests).toHaveLength(1);
  });

  it("lets the SDK retry a 429 and completes normally", async () => {
    const server = await serve((ex) => {
      if (ex.index === 0) {
        ex.res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "0" });
        ex.res.end(JSON.stringify({ error: { message: "slow down", type: "requests" } }));
        return;
      }
      sendAnswer(ex, ["second", " try"]);
    });
    const { text, events, error } = await run(providerFor(server, { maxRetries: 1 }));
    expect(error).toBeUndefined();
    expect(text).toBe("second try");
    expect(events.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.body).toEqual(server.requests[0]?.body);
  });

  it("does not sit out a long Retry-After beyond the first-token timeout", async () => {
    const server = await serve((ex) => {
      ex.res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "30" });
      ex.res.end(JSON.stringify({ error: { message: "slow down", type: "requests" } }));
    });
    const started = Date.now();
    const { error } = await run(providerFor(server, { maxRetries: 1, firstTokenTimeoutMs: 300 }));
    expectProviderError(error, "provider_timeout");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(server.requests).toHaveLength(1);
  });

  it("maps other HTTP errors to provider_error including the status", async () => {
    const server = await serve((ex) => {
      ex.res.writeHead(404, { "Content-Type": "application/json" });
      ex.res.end(JSON.stringify({ error: { message: "model 'nope' not found", type: "invalid_request_error" } }));
    });
    const { error } = await run(providerFor(server));
    const providerError = expectProviderError(error, "provider_error");
    expect(providerError.message).toContain("404");
    expect(providerError.message).toContain("model 'nope' not found");
  });

  it("maps a refused connection to provider_error", async () => {
    const server = await serve(() => {});
    const baseUrl = server.baseUrl;
    await server.close(); // nothing listens on that port any more
    const provider = createOpenAiProvider({
      baseUrl,
      apiKey: "",
      model: "m",
      firstTokenTimeoutMs: 2_000,
      interTokenTimeoutMs: 2_000,
      maxRetries: 0,
    });
    const { error } = await run(provider);
    const message = expectProviderError(error, "provider_error").message;
    expect(message).toMatch(/connection/i);
    expect(message).toContain("ECONNREFUSED");
  });

  it("aborts the upstream request on cancel and ends with an AbortError", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("First"));
      keepAliveForever(ex);
    });
    const controller = new AbortController();
    let abortedAt = 0;
    const { text, events, error } = await run(providerFor(server), controller.signal, (event) => {
      if (event.type !== "token") return;
      abortedAt = Date.now();
      controller.abort();
    });
    // Promptly, not when the (2 s) inter-token watchdog would have fired anyway.
    expect(Date.now() - abortedAt).toBeLessThan(1_500);
    expect(text).toBe("First");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe("AbortError");
    expect(error).not.toBeInstanceOf(ProviderError);
    await server.clientDisconnected;
  });

  it("ends with an AbortError when cancelled after the server already sent the whole answer", async () => {
    let answerSent!: () => void;
    const sent = new Promise<void>((resolve) => {
      answerSent = resolve;
    });
    const server = await serve((ex) => {
      ex.res.on("finish", () => answerSent());
      sendAnswer(ex, ["short", " answer"]);
    });
    const controller = new AbortController();
    const started = Date.now();
    const { text, events, error } = await run(providerFor(server), controller.signal, async (event) => {
      if (event.type !== "token") return;
      await sent;
      // Not synchronisation (the outcome must be the same either way): gives the client time to receive the end
      // of the body, the case where Node's fetch never settles a read after an abort.
      await sleep(50);
      controller.abort();
    });
    expect(text).toBe("short");
    expect(events.some((e) => e.type === "finish")).toBe(false);
    expect((error as Error).name).toBe("AbortError");
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("ends with an AbortError when cancelled before the first token", async () => {
    let requestArrived!: () => void;
    const arrived = new Promise<void>((resolve) => {
      requestArrived = resolve;
    });
    const server = await serve((ex) => {
      ex.startEvents();
      keepAliveForever(ex);
      requestArrived();
    });
    const controller = new AbortController();
    const outcome = run(providerFor(server), controller.signal);
    await arrived;
    const abortedAt = Date.now();
    controller.abort();
    const { events, error } = await outcome;
    expect(Date.now() - abortedAt).toBeLessThan(1_500);
    expect(events).toEqual([]);
    expect((error as Error).name).toBe("AbortError");
    await server.clientDisconnected;
  });

  it("hangs up on the server when the consumer stops iterating early", async () => {
    const server = await serve((ex) => {
      ex.startEvents();
      ex.data(chunk("Only"));
      keepAliveForever(ex);
    });
    const iterator = providerFor(server)
      .stream({ messages, signal: new AbortController().signal })
      [Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: { type: "token", text: "Only" } });
    await iterator.return?.();
    await server.clientDisconnected;
  });

  it("is configured with MAX_ANSWER_TOKENS as max_tokens (4096 unless set)", async () => {
    const server = await serve((ex) => sendAnswer(ex, ["ok"]));
    const env = { CLUSTER_SECRET: "s".repeat(32), OPENAI_BASE_URL: server.baseUrl, OPENAI_MODEL: "fake-model" };
    for (const [variable, expected] of [
      [undefined, 4096],
      ["77", 77],
    ] as const) {
      const provider = createProvider(loadAiConfig({ ...env, MAX_ANSWER_TOKENS: variable }));
      expect(provider.name).toBe("openai");
      const { error } = await run(provider);
      expect(error).toBeUndefined();
      expect(server.requests.at(-1)?.body.max_tokens).toBe(expected);
    }
  });
});
