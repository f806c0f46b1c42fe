/** WebSocket close codes (docs/protocol.md §3 "Close codes"). */
export const CloseCode = {
  protocolViolation: 4400,
  unauthorized: 4401,
  helloTimeout: 4408,
  slowConsumer: 4409,
  rateLimited: 4429,
  /** The session already has WS_SOCKETS_PER_SESSION sockets on this gateway. */
  tooManySockets: 4430,
  serviceRestart: 1012,
  frameTooLarge: 1009,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Every error code a client can see, in REST error bodies, `error` frames and `done.error`.
 * One list, so gateway, AI node and clients agree on the spelling.
 */
export const ErrorCode = {
  /** Body or frame did not match its schema, or was not JSON. */
  badRequest: "bad_request",
  /** Missing, malformed, unknown or expired token. */
  unauthorized: "unauthorized",
  /** Unknown resource, or a resource of another session (never revealed as existing). */
  notFound: "not_found",
  /** A stream id the session does not know (WebSocket `error` frame). */
  streamUnknown: "stream_unknown",
  /** Body larger than 64 KiB. */
  payloadTooLarge: "payload_too_large",
  /** Session or client address over its rate. */
  rateLimited: "rate_limited",
  /** The session or the client address already has its maximum of answers running (STREAMS_PER_SESSION/_ADDRESS). */
  tooManyStreams: "too_many_streams",
  /**
   * Too many open WebSockets: of the client address (nginx `limit_conn`, HTTP 429 before the upgrade) or of the
   * session on one gateway (the error frame sent before close 4430).
   */
  tooManyConnections: "too_many_connections",
  /** A `clientMessageId` reused with another message or conversation (409). */
  idempotencyConflict: "idempotency_conflict",
  /** Request line or headers too large (nginx 414/431). */
  headersTooLarge: "headers_too_large",
  /** Every AI node refused the dispatch. */
  noAiNode: "no_ai_node",
  /** Redis is unreachable; the request was not carried out. */
  unavailable: "unavailable",
  /** The WebSocket Origin is not on the allow-list. */
  forbiddenOrigin: "forbidden_origin",
  /** Unexpected server fault. */
  internal: "internal_error",
  /** The LLM provider failed (the provider's own message goes to the AI node's log, never to users). */
  providerError: "provider_error",
  /** The provider hit its rate limit (HTTP 429). */
  providerRateLimited: "provider_rate_limited",
  /** The provider's stream ended without a finish reason (cut connection). */
  providerIncomplete: "provider_incomplete",
  /** No token came within the first-token or inter-token timeout. */
  providerTimeout: "provider_timeout",
  /** The stream's AI node was lost and no other node could finish it. */
  streamFailed: "stream_failed",
  /** Route does not exist. */
  routeNotFound: "route_not_found",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
