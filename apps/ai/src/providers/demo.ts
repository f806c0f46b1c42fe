import { setImmediate, setTimeout as sleep } from "node:timers/promises";
import type { PromptMessage } from "@chatgrid/broker";
import { type Provider, ProviderError, type ProviderEvent, type ProviderRequest } from "./provider";

export interface DemoProviderConfig {
  /** Tokens per second; 0 streams as fast as possible. */
  tokensPerSecond: number;
  /** Tokens per answer, unless the prompt asks for another count with `[demo:tokens=N]`. */
  maxTokens: number;
  /**
   * The answer's maximum length (MAX_ANSWER_TOKENS): a longer `[demo:tokens=N]`, or a larger `maxTokens`, is cut
   * there and the answer ends with finishReason "length".
   */
  maxAnswerTokens: number;
  /**
   * The demo text is deterministic, so a node taking over a stream continues it seamlessly. Off, takeovers emit
   * `reset` and start over, as they do with a real model: useful to see (and test) that path.
   */
  seamlessTakeover: boolean;
}

export const DEMO_MODEL = "chatgrid-demo (not a real model)";

const WORDS = (
  "the gateway forwards every chunk in order while the ai node keeps a lease on its stream and redis keeps " +
  "a bounded history so a client that loses its socket resumes on any other node with nothing lost and nothing " +
  "repeated nginx pins each address to one gateway kafka records what happened and the demo model streams " +
  "deterministic text derived from the prompt at a steady configurable rate"
).split(" ");

/** FNV-1a: a small, stable hash so the same prompt always yields the same answer on every node. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a seeded PRNG, deterministic across processes. */
function prng(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Directives a prompt may carry to drive the demo model in tests and demos. */
export function demoDirectives(prompt: string): { tokens?: number; failAfter?: number } {
  const tokens = /\[demo:tokens=(\d{1,6})\]/.exec(prompt);
  const fail = /\[demo:error(?:=(\d{1,6}))?\]/.exec(prompt);
  return {
    tokens: tokens ? Number(tokens[1]) : undefined,
    failAfter: fail ? Number(fail[1] ?? 3) : undefined,
  };
}

/**
 * The demo answer's tokens for a prompt, one at a time: a sentence naming the demo model, then seeded words, in
 * sentences. Lazy, so a long answer costs no memory up front; the sequence for a prompt never depends on `count`
 * (a node that takes a stream over regenerates it and skips what was written, so it must stay the same).
 */
export function* demoTokenStream(messages: PromptMessage[], count: number): Generator<string, void, undefined> {
  const prompt = [...messages].reverse().find((message) => message.role === "user")?.content ?? "";
  const random = prng(hash(`${messages.length}:${prompt}`));
  const opening = ["(demo", "model)", "You", "said:", `"${prompt.slice(0, 40).replace(/\s+/g, " ").trim()}".`];
  let index = 0;
  for (const token of opening) {
    if (index >= count) return;
    yield index++ === 0 ? token : ` ${token}`;
  }
  let sentenceStart = true;
  while (index < count) {
    let word = WORDS[Math.floor(random() * WORDS.length)] ?? "chat";
    if (sentenceStart) word = word.charAt(0).toUpperCase() + word.slice(1);
    sentenceStart = random() < 0.12;
    index++;
    yield ` ${sentenceStart ? `${word}.` : word}`;
  }
}

/** The whole demo answer as an array: for tests and small counts only (the provider streams demoTokenStream). */
export function demoTokens(messages: PromptMessage[], count: number): string[] {
  return [...demoTokenStream(messages, count)];
}

/** At full speed (tokensPerSecond 0), the demo model gives the event loop a turn after this many tokens. */
export const DEMO_YIELD_EVERY = 256;

export function createDemoProvider(config: DemoProviderConfig): Provider {
  return {
    name: "demo",
    model: DEMO_MODEL,
    deterministic: config.seamlessTakeover,
    async *stream(request: ProviderRequest): AsyncIterable<ProviderEvent> {
      const prompt = request.messages.at(-1)?.content ?? "";
      const directives = demoDirectives(prompt);
      const requested = directives.tokens ?? config.maxTokens;
      // Above the answer's maximum length the answer is cut there and says so (finishReason "length").
      const count = Math.min(requested, config.maxAnswerTokens);
      const interval = config.tokensPerSecond > 0 ? 1000 / config.tokensPerSecond : 0;
      const started = performance.now();
      // A requested failure always happens: after `failAfter` tokens, or after the last one if the answer is shorter.
      const failAt = directives.failAfter === undefined ? undefined : Math.min(directives.failAfter, count);
      let index = 0;
      for (const token of demoTokenStream(request.messages, count)) {
        if (index === failAt) {
          throw new ProviderError("provider_error", "demo provider failure requested by [demo:error]");
        }
        // Pace against the start time rather than per token, so timer drift does not slow long answers.
        const due = started + index * interval - performance.now();
        if (due > 0) await sleep(due, undefined, { signal: request.signal });
        else if (index > 0 && index % DEMO_YIELD_EVERY === 0) {
          // Unpaced, a consumer that does no I/O would keep the loop in microtasks: let timers and other streams run.
          await setImmediate(undefined, { signal: request.signal });
        } else request.signal.throwIfAborted();
        index++;
        yield { type: "token", text: token };
      }
      if (failAt === count)
        throw new ProviderError("provider_error", "demo provider failure requested by [demo:error]");
      yield {
        type: "finish",
        finishReason: requested > count ? "length" : "stop",
        usage: { promptTokens: prompt.split(/\s+/).filter(Boolean).length, completionTokens: count },
      };
    },
  };
}
