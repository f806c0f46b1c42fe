import type { PromptMessage } from "@chatgrid/broker";
import { describe, expect, it } from "vitest";
import { createDemoProvider, DEMO_MODEL, type DemoProviderConfig, demoDirectives, demoTokens } from "./demo";
import { ProviderError, type ProviderEvent } from "./provider";

function provider(overrides: Partial<DemoProviderConfig> = {}) {
  return createDemoProvider({ tokensPerSecond: 0, maxTokens: 30, seamlessTakeover: true, ...overrides });
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
});
