import type { AiConfig } from "../config";
import { createDemoProvider } from "./demo";
import { createOpenAiProvider } from "./openai";
import type { Provider } from "./provider";

export function createProvider(config: AiConfig): Provider {
  if (config.provider === "openai") {
    return createOpenAiProvider({
      baseUrl: config.OPENAI_BASE_URL ?? "https://api.openai.com/v1",
      apiKey: config.OPENAI_API_KEY ?? "unused",
      model: config.OPENAI_MODEL,
      firstTokenTimeoutMs: config.PROVIDER_FIRST_TOKEN_TIMEOUT_MS,
      interTokenTimeoutMs: config.PROVIDER_INTER_TOKEN_TIMEOUT_MS,
      maxRetries: config.PROVIDER_MAX_RETRIES,
      maxTokens: config.MAX_ANSWER_TOKENS,
    });
  }
  return createDemoProvider({
    tokensPerSecond: config.DEMO_TOKENS_PER_SECOND,
    maxTokens: config.DEMO_MAX_TOKENS,
    maxAnswerTokens: config.MAX_ANSWER_TOKENS,
    seamlessTakeover: config.DEMO_SEAMLESS_TAKEOVER,
  });
}
