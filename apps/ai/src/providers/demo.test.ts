import { createHash } from "node:crypto";
import type { PromptMessage } from "@chatgrid/broker";
import { describe, expect, it } from "vitest";
import { loadAiConfig } from "../config";
import {
  createDemoProvider,
  DEMO_MODEL,
  DEMO_YIELD_EVERY,
  type DemoProviderConfig,
  demoDirectives,
  demoTokenStream,
  demoTokens,
} from "./demo";
import { createProvider } from "./index";
import { ProviderError, type ProviderEvent } from "./provider";

function provider(overrides: Partial<DemoProviderConfig> = {}) {
  return createDemoProvider({
    tokensPerSecond: 0,
    maxTokens: 30,
    maxAnswerTokens: 4096,
    seamlessTakeover: true,
    ...overrides,
  });
}

async function collect(
  messages: PromptMessage[],
  overrides: Partial<DemoProviderConfig> = {},
  signal = new AbortController().signal,
): Promise<ProviderEvent[]> {
  const events: ProviderEvent[] = [];
  for await (const event of provider(overrides).stream({ messages, signal })) events.push(event);
  return events;
}

const tokensOf = (events: ProviderEvent[]): string[] =>
  events.flatMap((event) => (event.type === "token" ? [event.text] : []));

const ask = (content: string): PromptMessage[] => [{ role: "user", content }];

describe("demo provider", () => {
  it("names itself as a demo model", () => {
    const demo = provider();
    expect(demo.name).toBe("demo");
    expect(demo.model).toBe(DEMO_MODEL);
    expect(demo.model).toMatch(/demo/i);
    expect(demo.deterministic).toBe(true);
    expect(provider({ seamlessTakeover: false }).deterministic).toBe(false);
  });

  it("is deterministic: the same messages give the same tokens; other messages give other tokens", async () => {
    const messages: PromptMessage[] = [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Tell me about Redis streams" },
    ];
    const first = await collect(messages);
    const second = await collect(structuredClone(messages));
    expect(second).toEqual(first);
    const other = tokensOf(await collect(ask("Tell me about Kafka instead")));
    expect(other).not.toEqual(tokensOf(first));
    // Same last prompt, different history: a different answer too.
    const shorter = tokensOf(await collect(messages.slice(2)));
    expect(shorter).not.toEqual(tokensOf(first));
  });

  it("yields maxTokens tokens, then one finish with usage", async () => {
    const events = await collect(ask("count please"), { maxTokens: 25 });
    expect(tokensOf(events)).toHaveLength(25);
    expect(events.at(-1)).toEqual({
      type: "finish",
      finishReason: "stop",
      usage: { promptTokens: 2, completionTokens: 25 },
    });
    expect(events.filter((e) => e.type === "finish")).toHaveLength(1);
  });

  it("[demo:tokens=N] overrides the token count", async () => {
    expect(tokensOf(await collect(ask("short [demo:tokens=3]"), { maxTokens: 50 }))).toHaveLength(3);
    expect(tokensOf(await collect(ask("long [demo:tokens=120]"), { maxTokens: 5 }))).toHaveLength(120);
    expect(demoDirectives("x [demo:tokens=7] y")).toEqual({ tokens: 7, failAfter: undefined });
  });

  it("[demo:error] throws a ProviderError with code provider_error after some tokens", async () => {
    const events: ProviderEvent[] = [];
    const failing = provider().stream({
      messages: ask("please fail [demo:error]"),
      signal: new AbortController().signal,
    });
    let caught: unknown;
    try {
      for await (const event of failing) events.push(event);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProviderError);
    expect((caught as ProviderError).code).toBe("provider_error");
    expect((caught as ProviderError).message).toMatch(/demo/);
    expect(events.every((e) => e.type === "token")).toBe(true);
    expect(events).toHaveLength(3);
    expect(demoDirectives("[demo:error=5]")).toEqual({ tokens: undefined, failAfter: 5 });
    await expect(collect(ask("[demo:error=0]"))).rejects.toMatchObject({
      name: "ProviderError",
      code: "provider_error",
    });
  });

  it("stops with an AbortError when the signal is aborted", async () => {
    const controller = new AbortController();
    const events: ProviderEvent[] = [];
    // 50 tokens per second: each token waits, so the abort lands during a wait.
    const stream = provider({ tokensPerSecond: 50, maxTokens: 1000 }).stream({
      messages: ask("go on forever"),
      signal: controller.signal,
    });
    let caught: unknown;
    try {
      for await (const event of stream) {
        events.push(event);
        if (events.length === 2) controller.abort();
      }
    } catch (error) {
      caught = error;
    }
    expect((caught as Error | undefined)?.name).toBe("AbortError");
    expect(events).toHaveLength(2);
  });

  it("stops with an AbortError at full speed too (no pacing wait)", async () => {
    const controller = new AbortController();
    const events: ProviderEvent[] = [];
    let caught: unknown;
    try {
      for await (const event of provider({ tokensPerSecond: 0, maxTokens: 1000 }).stream({
        messages: ask("fast"),
        signal: controller.signal,
      })) {
        events.push(event);
        if (events.length === 3) controller.abort();
      }
    } catch (error) {
      caught = error;
    }
    expect((caught as Error | undefined)?.name).toBe("AbortError");
    expect(events).toHaveLength(3);
  });

  it("paces tokens at tokensPerSecond", async () => {
    const started = performance.now();
    const events = await collect(ask("pace"), { tokensPerSecond: 200, maxTokens: 11 });
    const elapsed = performance.now() - started;
    expect(tokensOf(events)).toHaveLength(11);
    // 10 intervals of 5 ms after the first token.
    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(elapsed).toBeLessThan(2000);
  });

  it("tokens concatenate into text without double spaces, leading or trailing space", async () => {
    const prompts = ["Hello   world\n\twith   odd spacing ", "   ", "", "a".repeat(100), "Ünïcödé ✓ prompt"];
    for (const prompt of prompts) {
      for (const count of [1, 5, 6, 60, 300]) {
        const tokens = demoTokens(ask(prompt), count);
        expect(tokens).toHaveLength(count);
        const text = tokens.join("");
        expect(text, JSON.stringify({ prompt, count })).not.toMatch(/\s{2}/);
        expect(text).toBe(text.trim());
        expect(tokens.every((token, index) => index === 0 || /^ \S/.test(token))).toBe(true);
      }
    }
  });

  it("the answer quotes the start of the last user message", () => {
    const text = demoTokens(
      [
        { role: "user", content: "first" },
        { role: "assistant", content: "reply" },
        { role: "user", content: "second question" },
      ],
      5,
    ).join("");
    expect(text).toContain('"second question"');
  });

  it("gives the same tokens as the eager generator it replaced (takeovers regenerate and skip what was written)", () => {
    // Recorded from the former implementation, which built the whole answer in an array.
    expect(demoTokens(ask("Tell me about Redis streams"), 12)).toEqual([
      "(demo",
      " model)",
      " You",
      " said:",
      ' "Tell me about Redis streams".',
      " Demo",
      " on",
      " any",
      " the",
      " ai",
      " node",
      " demo",
    ]);
    expect(demoTokens(ask("Hi"), 3)).toEqual(["(demo", " model)", " You"]);
    expect(demoTokens(ask("   "), 7)).toEqual(["(demo", " model)", " You", " said:", ' "".', " Keeps", " what"]);
    const long = demoTokens(
      [
        { role: "user", content: "hi" },
        { role: "assistant", content: "yo" },
        { role: "user", content: "a long one" },
      ],
      5000,
    ).join("");
    expect(long).toHaveLength(29617);
    expect(createHash("sha256").update(long).digest("hex")).toBe(
      "fa207e5b6f7467fb57d5e7f47f694a621eb8b243196ae508cbf54d68c6f1e70e",
    );
    // A shorter answer is a prefix of a longer one: the count never changes the sequence.
    expect(demoTokens(ask("prefix"), 40)).toEqual(demoTokens(ask("prefix"), 400).slice(0, 40));
  });

  it("cuts [demo:tokens=N] above the answer's maximum length there and says so with finishReason length", async () => {
    const capped = await collect(ask("[demo:tokens=999999] go"), { maxAnswerTokens: 50 });
    expect(tokensOf(capped)).toEqual(demoTokens(ask("[demo:tokens=999999] go"), 50));
    expect(capped.at(-1)).toEqual({
      type: "finish",
      finishReason: "length",
      usage: { promptTokens: 2, completionTokens: 50 },
    });
    // Exactly at the maximum is a complete answer; a default length above it is cut too.
    expect((await collect(ask("[demo:tokens=50] go"), { maxAnswerTokens: 50 })).at(-1)).toMatchObject({
      finishReason: "stop",
    });
    const byDefault = await collect(ask("no directive"), { maxTokens: 80, maxAnswerTokens: 20 });
    expect(tokensOf(byDefault)).toHaveLength(20);
    expect(byDefault.at(-1)).toMatchObject({ finishReason: "length" });
    // More than 6 digits is no directive at all.
    expect(demoDirectives("[demo:tokens=1000000]").tokens).toBeUndefined();
  });

  it("is configured with MAX_ANSWER_TOKENS as the cap (createProvider)", async () => {
    const demo = createProvider(loadAiConfig({ CLUSTER_SECRET: "s".repeat(32), MAX_ANSWER_TOKENS: "3" }));
    const events: ProviderEvent[] = [];
    for await (const event of demo.stream({ messages: ask("[demo:tokens=10]"), signal: new AbortController().signal }))
      events.push(event);
    expect(tokensOf(events)).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ finishReason: "length" });
  });

  it("generates lazily: a paused [demo:tokens=999999] answer holds no more than the tokens it gave", async () => {
    const eagerBytes = 999_999 * 16; // what the whole answer's strings would take at the least
    const before = process.memoryUsage().heapUsed;
    const iterator = provider({ maxAnswerTokens: 999_999 })
      .stream({ messages: ask("[demo:tokens=999999] huge"), signal: new AbortController().signal })
      [Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) expect((await iterator.next()).value).toMatchObject({ type: "token" });
    // Measured while the generator is suspended: an answer built up front would still be referenced here.
    const grown = process.memoryUsage().heapUsed - before;
    await iterator.return?.();
    expect(grown).toBeLessThan(eagerBytes / 4);

    let generated = 0;
    const tokens = demoTokenStream(ask("huge"), 999_999);
    for (const _ of tokens) if (++generated === 3) break;
    expect(generated).toBe(3);
  });

  it("at full speed still yields to the event loop, so timers keep firing during a long answer", async () => {
    // A cap far above the default, so the answer runs long enough to show a stall; N is still cut to it.
    const cap = 999_998;
    let ticks = 0;
    let last = performance.now();
    let longestGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const started = performance.now();
    let tokens = 0;
    let finish: ProviderEvent | undefined;
    // A consumer that does no I/O at all: only the provider's own yields let the timer run.
    for await (const event of provider({ maxAnswerTokens: cap }).stream({
      messages: ask("[demo:tokens=999999] flood"),
      signal: new AbortController().signal,
    })) {
      if (event.type === "token") tokens++;
      else finish = event;
    }
    const ended = performance.now();
    clearInterval(timer);
    // The stretch after the last tick counts too: a loop blocked to the end would otherwise go unseen.
    longestGap = Math.max(longestGap, ended - last);
    expect(tokens).toBe(cap);
    expect(finish).toMatchObject({ type: "finish", finishReason: "length" });
    expect(cap / DEMO_YIELD_EVERY).toBeGreaterThan(3900);
    // The loop never stalls for long (the eager generator froze it ~0.5 s per answer), and the timer kept firing.
    expect(longestGap).toBeLessThan(100);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor((ended - started) / 50));
  });
});
