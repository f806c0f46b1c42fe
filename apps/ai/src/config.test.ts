import { describe, expect, it } from "vitest";
import { loadAiConfig } from "./config";

/** A cluster secret of the minimum length: every node needs one. */
const SECRET = "s".repeat(32);

/** Loads with the given variables only (never the test process's environment), plus the required cluster secret. */
const load = (env: Record<string, string | undefined> = {}) => loadAiConfig({ CLUSTER_SECRET: SECRET, ...env });

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`threw a non-Error: ${String(error)}`);
  }
  throw new Error("did not throw");
}

describe("loadAiConfig", () => {
  it("has working defaults: the demo provider on 127.0.0.1:7001", () => {
    const config = load();
    expect(config).toMatchObject({
      NODE_NAME: "ai-1",
      HOST: "127.0.0.1",
      PORT: 7001,
      REGISTER: true,
      REDIS_URL: "redis://127.0.0.1:6379",
      OPENAI_MODEL: "gpt-4o-mini",
      PROVIDER_MAX_RETRIES: 1,
      DEMO_TOKENS_PER_SECOND: 20,
      DEMO_MAX_TOKENS: 60,
      DEMO_SEAMLESS_TAKEOVER: true,
      COALESCE_MS: 10,
      APPEND_BATCH_MAX: 64,
      MAX_CONCURRENT_STREAMS: 1000,
      MAX_ANSWER_TOKENS: 4096,
      MAX_ANSWER_CHARS: 100_000,
      STREAM_MAX_DURATION_MS: 300_000,
      CONTEXT_MAX_CHARS: 48_000,
      CONTEXT_MAX_MESSAGES: 40,
      STREAM_LEASE_MS: 5000,
      provider: "demo",
      publicUrl: "http://127.0.0.1:7001",
    });
    expect(config.PROVIDER).toBeUndefined();
  });

  it("reads and coerces the variables", () => {
    const config = load({
      NODE_NAME: "ai-3",
      PORT: "7003",
      REGISTER: "no",
      DEMO_TOKENS_PER_SECOND: "0",
      DEMO_SEAMLESS_TAKEOVER: "0",
      COALESCE_MS: "0",
      PUBLIC_URL: "http://ai-3.internal:7003",
      MAX_ANSWER_TOKENS: "16",
      MAX_ANSWER_CHARS: "200",
      CONTEXT_MAX_CHARS: "5000",
      CONTEXT_MAX_MESSAGES: "8",
    });
    expect(config).toMatchObject({
      NODE_NAME: "ai-3",
      PORT: 7003,
      REGISTER: false,
      DEMO_TOKENS_PER_SECOND: 0,
      DEMO_SEAMLESS_TAKEOVER: false,
      COALESCE_MS: 0,
      publicUrl: "http://ai-3.internal:7003",
      MAX_ANSWER_TOKENS: 16,
      MAX_ANSWER_CHARS: 200,
      CONTEXT_MAX_CHARS: 5000,
      CONTEXT_MAX_MESSAGES: 8,
    });
  });

  it("announces a loopback URL when bound to every interface", () => {
    expect(load({ HOST: "0.0.0.0", PORT: "7005" }).publicUrl).toBe("http://127.0.0.1:7005");
    expect(load({ HOST: "10.1.2.3", PORT: "7005" }).publicUrl).toBe("http://10.1.2.3:7005");
  });

  it("picks the openai provider when an endpoint or key is configured", () => {
    expect(load({ OPENAI_API_KEY: "sk-test" }).provider).toBe("openai");
    expect(load({ OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" }).provider).toBe("openai");
    expect(load({ PROVIDER: "demo", OPENAI_API_KEY: "sk-test" }).provider).toBe("demo");
    expect(load({ PROVIDER: "openai", OPENAI_API_KEY: "sk-test" }).provider).toBe("openai");
  });

  it("refuses PROVIDER=openai without a key or endpoint", () => {
    const error = errorOf(() => load({ PROVIDER: "openai" }));
    expect(error.message).toContain("OPENAI_API_KEY");
  });

  it.each([
    ["PORT", "abc"],
    ["PORT", "0"],
    ["REDIS_URL", "http://x"],
    ["PROVIDER", "anthropic"],
    ["REGISTER", "maybe"],
    ["PUBLIC_URL", "not a url"],
    ["OPENAI_BASE_URL", "nope"],
    ["DEMO_MAX_TOKENS", "-3"],
    ["COALESCE_MS", "1.5"],
    ["APPEND_BATCH_MAX", "0"],
    ["APPEND_BATCH_MAX", "1025"],
    ["STREAM_LEASE_MS", "10"],
    ["MAX_ANSWER_TOKENS", "0"],
    ["MAX_ANSWER_CHARS", "many"],
    ["CONTEXT_MAX_CHARS", "-1"],
    ["CONTEXT_MAX_MESSAGES", "0"],
    // Above a timer's range a deadline would fire at once: every answer would time out.
    ["STREAM_MAX_DURATION_MS", "2147483648"],
    ["CLUSTER_SECRET", "too-short"],
  ])("%s=%s is refused with a message naming the variable", (name, value) => {
    const error = errorOf(() => load({ [name]: value }));
    expect(error.message).toContain(name);
    expect(error.message).toContain("invalid configuration");
  });

  it("names every bad variable in one message", () => {
    const error = errorOf(() => load({ PORT: "abc", REDIS_URL: "http://x" }));
    expect(error.message).toContain("PORT");
    expect(error.message).toContain("REDIS_URL");
  });
});
