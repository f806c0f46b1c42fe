import type { PromptMessage } from "@chatgrid/broker";
import type { Usage } from "@chatgrid/protocol";

export interface ProviderRequest {
  messages: PromptMessage[];
  /** Aborted on cancel, on takeover by another node, and on shutdown: the provider must stop its upstream call. */
  signal: AbortSignal;
}

/** What a provider yields: text tokens, then exactly one `finish` when (and only when) the answer is complete. */
export type ProviderEvent =
  | { type: "token"; text: string }
  | { type: "finish"; finishReason: "stop" | "length"; usage?: Usage };

export interface Provider {
  /** `demo` or `openai`. */
  readonly name: string;
  /** The model name shown to users (the demo model says it is one). */
  readonly model: string;
  /**
   * True when the same prompt always gives the same tokens, so a node that takes over a stream can continue it
   * seamlessly instead of emitting `reset`.
   */
  readonly deterministic: boolean;
  /**
   * Streams one answer. Ends without `finish` only by throwing: a ProviderError for provider faults, or an
   * abort error when `signal` was aborted.
   */
  stream(request: ProviderRequest): AsyncIterable<ProviderEvent>;
}

export type ProviderErrorCode = "provider_error" | "provider_rate_limited" | "provider_incomplete" | "provider_timeout";

/**
 * A provider fault. The stream ends with `done` + `{code, message}` where the message is the code's fixed text
 * (user-errors.ts); this error's own message is detail for the logs only: it may hold provider text, hosts, ports
 * or a masked key.
 */
export class ProviderError extends Error {
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}
