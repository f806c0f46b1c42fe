import type { Usage } from "@chatgrid/protocol";
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import type { Stream } from "openai/streaming";
import { type Provider, ProviderError, type ProviderEvent, type ProviderRequest } from "./provider";

export interface OpenAiProviderConfig {
  /** Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio), e.g. http://127.0.0.1:1234/v1 */
  baseUrl: string;
  /** May be a dummy for local servers. */
  apiKey: string;
  model: string;
  /** No content token within this time after the request → provider_timeout. Retry-After waits count too. */
  firstTokenTimeoutMs: number;
  /** Longest gap between content tokens (keep-alive comments are not progress) → provider_timeout. */
  interTokenTimeoutMs: number;
  /** Passed to the SDK, which retries 429/408/409/5xx and connection errors (honouring Retry-After) before streaming. */
  maxRetries: number;
  temperature?: number;
  maxTokens?: number;
}

type FinishReason = Extract<ProviderEvent, { type: "finish" }>["finishReason"];

/** A Provider backed by the Chat Completions streaming API of any OpenAI-compatible server. */
export function createOpenAiProvider(config: OpenAiProviderConfig): Provider {
  const client = new OpenAI({
    baseURL: config.baseUrl,
    // The SDK refuses to start without a key; local servers ignore it, so any placeholder will do.
    apiKey: config.apiKey || "no-key",
    maxRetries: config.maxRetries,
    // Bounds each attempt's wait for response headers (the SDK clears it once the body starts). Our own watchdog
    // below is the real first-token limit; this only keeps a hung attempt from outliving it. Must be an integer.
    timeout: Math.max(1, Math.ceil(config.firstTokenTimeoutMs)),
  });
  return {
    name: "openai",
    model: config.model,
    deterministic: false,
    stream: (request) => streamCompletion(client, config, request),
  };
}

async function* streamCompletion(
  client: OpenAI,
  config: OpenAiProviderConfig,
  request: ProviderRequest,
): AsyncGenerator<ProviderEvent> {
  const { signal } = request;
  if (signal.aborted) throw abortErrorOf(signal);

  // One controller for the upstream request, aborted by the caller's signal, by the watchdog, and on exit.
  const upstream = new AbortController();
  const onCallerAbort = () => upstream.abort();
  signal.addEventListener("abort", onCallerAbort, { once: true });

  // Watchdog: a single timer, re-armed after every content token. The SDK never surfaces SSE comments
  // (keep-alives), so they cannot reset it — exactly what we want.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut: string | undefined;
  const arm = (ms: number, what: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = `${what} within ${ms} ms`;
      upstream.abort();
    }, ms);
  };

  let finishReason: FinishReason | undefined;
  let usage: Usage | undefined;
  try {
    arm(config.firstTokenTimeoutMs, "no first token");
    let stream: Stream<ChatCompletionChunk>;
    try {
      const created = client.chat.completions.create(
        {
          model: config.model,
          messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
          stream: true,
          stream_options: { include_usage: true },
          ...(config.temperature !== undefined && { temperature: config.temperature }),
          // `max_tokens` rather than `max_completion_tokens`: it is what vLLM, Ollama, llama.cpp and LM Studio accept.
          ...(config.maxTokens !== undefined && { max_tokens: config.maxTokens }),
        },
        { signal: upstream.signal },
      );
      // The SDK's sleep between retries ignores the signal, so race it to stop waiting the moment we abort.
      stream = await untilAborted(created, upstream.signal);
    } catch (err) {
      throw toFailure(err, signal, timedOut, "request");
    }

    // Iterated by hand so that every read can be raced against the abort: Node 20's fetch (undici) never settles a
    // read on a body that had been fully received before the abort, so a cancel arriving while the consumer holds
    // a token of a short, already-complete answer would otherwise hang here forever (and the SDK ends the iteration
    // silently on an abort instead of throwing, when the read does settle).
    const chunks = stream[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await untilAborted(chunks.next(), upstream.signal);
        if (next.done) break;
        const chunk = next.value;
        // Usually in a final chunk with `choices: []`; some servers repeat it on every chunk, so keep the last.
        if (chunk.usage) {
          usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
        const choice = chunk.choices[0];
        if (!choice) continue;
        const text = choice.delta?.content;
        if (text) {
          // Pause the watchdog while the consumer handles the token: a slow consumer is not a stalled provider.
          clearTimeout(timer);
          yield { type: "token", text };
          arm(config.interTokenTimeoutMs, "no next token");
        }
        // content_filter / tool_calls / function_call end the answer too; the protocol only knows stop and length.
        if (choice.finish_reason) finishReason = choice.finish_reason === "length" ? "length" : "stop";
      }
    } catch (err) {
      // A transport failure after finish_reason only lost the usage chunk: the answer itself is complete.
      if (!finishReason || signal.aborted || err instanceof APIError || err instanceof SyntaxError) {
        throw toFailure(err, signal, timedOut, "stream");
      }
    }
    // Normally an abort surfaces above as the race's AbortError; this covers one that lands as the stream ends.
    if (signal.aborted) throw abortErrorOf(signal);
    if (!finishReason) {
      if (timedOut) throw new ProviderError("provider_timeout", `provider timed out: ${timedOut}`);
      // Also reached on `data: [DONE]` without any finish_reason: never pass a truncated answer off as complete.
      throw new ProviderError("provider_incomplete", "provider stream ended without a finish_reason");
    }
    clearTimeout(timer);
    yield usage ? { type: "finish", finishReason, usage } : { type: "finish", finishReason };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onCallerAbort);
    // Closes the HTTP request when the consumer stopped early (return/throw) or anything above failed. (Not
    // `chunks.return()`: it would queue behind a read that may never settle; the abort reaches the SDK anyway.)
    upstream.abort();
  }
}

/** Maps whatever the SDK (or fetch) threw to a caller abort or a ProviderError. */
function toFailure(err: unknown, signal: AbortSignal, timedOut: string | undefined, phase: "request" | "stream") {
  // The caller's cancel wins over everything, then our own watchdog (whose abort caused this error).
  if (signal.aborted) return abortErrorOf(signal);
  if (timedOut) return new ProviderError("provider_timeout", `provider timed out: ${timedOut}`);
  if (err instanceof ProviderError) return err;
  if (err instanceof APIConnectionTimeoutError) return new ProviderError("provider_timeout", err.message);
  if (err instanceof APIConnectionError) {
    // The SDK's message is a bare "Connection error." and undici's "fetch failed"; the causes say what happened.
    const causes: string[] = [];
    for (let cause = err.cause; cause instanceof Error && causes.length < 3; cause = cause.cause) {
      causes.push(cause.message);
    }
    return new ProviderError("provider_error", [err.message, ...causes].join(": "));
  }
  if (err instanceof APIError) {
    // HTTP errors carry a status (the SDK prefixes it to the provider's message); an `error` object sent
    // mid-stream has none and its message is the provider's own.
    if (err.status === 429) {
      return new ProviderError("provider_rate_limited", err.message, retryAfterSeconds(err.headers));
    }
    return new ProviderError("provider_error", err.message);
  }
  const message = err instanceof Error ? err.message : String(err);
  // Anything else while reading the body is the connection dying mid-answer (undici: "terminated"), except
  // unparsable data, which is the provider talking nonsense.
  if (phase === "stream" && !(err instanceof SyntaxError)) {
    return new ProviderError("provider_incomplete", `provider stream broke off before finish_reason: ${message}`);
  }
  return new ProviderError("provider_error", `provider request failed: ${message}`);
}

/** Retry-After is either delay-seconds or an HTTP date; `retry-after-ms` is a non-standard OpenAI extra. */
function retryAfterSeconds(headers: Headers | undefined): number | undefined {
  const value = headers?.get("retry-after")?.trim();
  if (value) {
    if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value));
    const date = Date.parse(value);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }
  const ms = Number(headers?.get("retry-after-ms") ?? Number.NaN);
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms / 1000) : undefined;
}

/** The error a cancelled stream ends with: named AbortError, so callers can tell a cancel from a failure. */
function abortErrorOf(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error && reason.name === "AbortError"
    ? reason
    : new DOMException("The operation was aborted", "AbortError");
}

/** Settles like `promise`, but rejects as soon as `signal` aborts. */
function untilAborted<T>(promise: PromiseLike<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortErrorOf(signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
