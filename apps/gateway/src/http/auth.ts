import { requestHeader } from "@chatgrid/broker";
import { ErrorCode } from "@chatgrid/protocol";
import type { Context, MiddlewareHandler } from "hono";
import type { ApiDeps, ApiEnv } from "./context";
import { apiError } from "./errors";
import { refuse } from "./refuse";

/**
 * `Authorization: Bearer <token>` → the session id. Tokens are accepted only in this header (never in a URL) and
 * never logged. The session's rate limit is a separate step (`limitSessionRate`), so routes can come before it.
 */
export function requireSession(deps: ApiDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = requestHeader(c, "authorization") ?? "";
    const match = /^Bearer ([^\s]+)$/i.exec(header);
    if (!match?.[1])
      return apiError(c, 401, ErrorCode.unauthorized, "missing or malformed Authorization: Bearer token");
    const sessionId = await deps.sessions.resolve(match[1]);
    if (!sessionId) return apiError(c, 401, ErrorCode.unauthorized, "unknown or expired token");
    c.set("sessionId", sessionId);
    await next();
  };
}

/** The 429 of the session's token bucket (SESSION_RATE_*). */
export function refuseSessionRate(c: Context, deps: Pick<ApiDeps, "metrics">, retryAfterSeconds: number): Response {
  const message = "this session is over its request rate";
  return refuse(c, deps, "session_rate", ErrorCode.rateLimited, message, retryAfterSeconds);
}

/**
 * The session's token bucket (SESSION_RATE_*), shared by every gateway; after `requireSession`. `POST /api/chat`
 * charges it itself, as the first of its checks in one Redis call (routes/chat.ts).
 */
export function limitSessionRate(deps: ApiDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const decision = await deps.rateLimiter.check(c.get("sessionId"));
    if (!decision.allowed) return refuseSessionRate(c, deps, decision.retryAfterSeconds);
    await next();
  };
}
