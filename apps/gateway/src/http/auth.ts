import { ErrorCode } from "@chatgrid/protocol";
import type { MiddlewareHandler } from "hono";
import type { ApiDeps, ApiEnv } from "./context";
import { apiError } from "./errors";

/**
 * `Authorization: Bearer <token>` → the session id, then the session's rate limit.
 * Tokens are accepted only in this header (never in a URL) and never logged.
 */
export function requireSession(deps: ApiDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer ([^\s]+)$/i.exec(header);
    if (!match?.[1])
      return apiError(c, 401, ErrorCode.unauthorized, "missing or malformed Authorization: Bearer token");
    const sessionId = await deps.sessions.resolve(match[1]);
    if (!sessionId) return apiError(c, 401, ErrorCode.unauthorized, "unknown or expired token");
    const decision = await deps.rateLimiter.check(sessionId);
    if (!decision.allowed) {
      return apiError(c, 429, ErrorCode.rateLimited, "this session is over its request rate", {
        "retry-after": String(decision.retryAfterSeconds),
      });
    }
    c.set("sessionId", sessionId);
    await next();
  };
}
