import { envBool, envInt, parseEnv, storeEnvSchema } from "@chatgrid/broker";
import { eventsEnvSchema } from "@chatgrid/events";
import { z } from "zod";

const aiEnvSchema = storeEnvSchema.extend(eventsEnvSchema.shape).extend({
  NODE_NAME: z.string().min(1).default("ai-1"),
  HOST: z.string().default("127.0.0.1"),
  PORT: envInt(7001),
  /** The URL gateways use to reach this node, announced in Redis when REGISTER is on. */
  PUBLIC_URL: z.url().optional(),
  REGISTER: envBool(true),
  PROVIDER: z.enum(["demo", "openai"]).optional(),
  OPENAI_BASE_URL: z.url().optional(),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_MODEL: z.string().default("gpt-4o-mini"),
  PROVIDER_FIRST_TOKEN_TIMEOUT_MS: envInt(30_000),
  PROVIDER_INTER_TOKEN_TIMEOUT_MS: envInt(30_000),
  PROVIDER_MAX_RETRIES: envInt(1, 0),
  DEMO_TOKENS_PER_SECOND: envInt(20, 0),
  DEMO_MAX_TOKENS: envInt(60),
  DEMO_SEAMLESS_TAKEOVER: envBool(true),
  /**
   * Bounds on every answer (docs/configuration.md "AI node"): provider token events, and characters of the stored
   * text whatever the provider's token sizes. Reaching either ends the answer with finishReason "length"; the
   * OpenAI provider also sends the token bound as `max_tokens`, and the demo model caps `[demo:tokens=N]` at it.
   */
  MAX_ANSWER_TOKENS: envInt(4096),
  MAX_ANSWER_CHARS: envInt(100_000),
  /**
   * The context budget: at most this many characters and messages of the conversation go to the provider, the
   * oldest turns dropped first. The current user message always goes whole, even when it alone is larger
   * (a message is at most 32 000 characters by protocol; docs/configuration.md "AI node" explains the default).
   */
  CONTEXT_MAX_CHARS: envInt(48_000),
  CONTEXT_MAX_MESSAGES: envInt(40),
  /** Provider tokens arriving within this window are published as one chunk (0: one chunk per token). */
  COALESCE_MS: envInt(10, 0),
  MAX_CONCURRENT_STREAMS: envInt(1000),
  /** How long a running stream may keep trying to publish while Redis is away before the node gives it up. */
  PUBLISH_RETRY_MS: envInt(15_000),
  SHUTDOWN_GRACE_MS: envInt(10_000, 0),
});

export type AiConfig = ReturnType<typeof loadAiConfig>;

export function loadAiConfig(env: Record<string, string | undefined> = process.env) {
  const parsed = parseEnv(aiEnvSchema, env);
  // No provider named: openai when an endpoint or key is configured, else the built-in demo model.
  const provider = parsed.PROVIDER ?? (parsed.OPENAI_BASE_URL || parsed.OPENAI_API_KEY ? "openai" : "demo");
  if (provider === "openai" && !parsed.OPENAI_API_KEY && !parsed.OPENAI_BASE_URL) {
    throw new Error(
      "invalid configuration:\n  PROVIDER=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for non-OpenAI servers)",
    );
  }
  return {
    ...parsed,
    provider,
    publicUrl: parsed.PUBLIC_URL ?? `http://${parsed.HOST === "0.0.0.0" ? "127.0.0.1" : parsed.HOST}:${parsed.PORT}`,
  };
}
