import { ErrorCode, type StreamError } from "@chatgrid/protocol";
import type { ProviderErrorCode } from "./providers/provider";

/** The codes an AI node ends a failed answer with (`stream_failed` is the gateway's). */
export type AnswerErrorCode = ProviderErrorCode | typeof ErrorCode.internal;

/**
 * What users see for each code: fixed texts, never the provider's message, a host, a port, Redis's error text or
 * a key (docs/protocol.md lists them). The detail goes to the logs and the failures metric.
 */
export const USER_ERROR_MESSAGES: Readonly<Record<AnswerErrorCode, string>> = {
  [ErrorCode.providerError]: "The AI provider could not answer this request.",
  [ErrorCode.providerRateLimited]: "The AI provider is receiving too many requests; try again in a moment.",
  [ErrorCode.providerIncomplete]: "The AI provider's answer broke off before it was complete.",
  [ErrorCode.providerTimeout]: "The AI provider took too long to respond.",
  [ErrorCode.internal]: "Something went wrong while generating the answer.",
};

/** The `done.error` for a code: the code and its fixed message. */
export function userError(code: AnswerErrorCode): StreamError {
  return { code, message: USER_ERROR_MESSAGES[code] };
}

/** Log details are cut to this length: a provider's error body can be large. */
const DETAIL_MAX_CHARS = 500;

/** The detail of an error, for the logs only. */
export function errorDetail(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > DETAIL_MAX_CHARS ? `${text.slice(0, DETAIL_MAX_CHARS)}…` : text;
}
