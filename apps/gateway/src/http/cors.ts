import { outgoingOf, requestHeader } from "@chatgrid/broker";
import type { MiddlewareHandler } from "hono";

/** How long a browser may keep a preflight's answer. */
export const CORS_MAX_AGE_SECONDS = 600;
/** What the API answers to (docs/protocol.md §2); a preflight for anything else gets no allow headers. */
const ALLOWED_METHODS = "GET,POST";

/**
 * CORS for the REST API (docs/protocol.md, "What this implementation decided", REST): an origin on the allow-list
 * may call it from a browser; every answer varies by `Origin`. The headers of an ordinary answer go on the Node
 * response (`setHeader`, merged into the status line's headers when it is written), not on Hono's `Response`:
 * `c.header()` after the handler rebuilds the whole undici `Response` (Hono's `cors` does that on every request),
 * the gateway's largest undici cost per request under load (docs/benchmarks.md "Changes, before and after", 10).
 * Under `app.request` (tests) there is no Node response and `c.header()` is used.
 */
export function apiCors(allowedOrigins: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const origin = requestHeader(c, "origin");
    const allowOrigin = origin !== undefined && allowed.has(origin) ? origin : undefined;
    if (c.req.method === "OPTIONS") {
      const headers: Record<string, string> = { vary: "Origin, Access-Control-Request-Headers" };
      if (allowOrigin) {
        headers["access-control-allow-origin"] = allowOrigin;
        headers["access-control-allow-methods"] = ALLOWED_METHODS;
        headers["access-control-max-age"] = String(CORS_MAX_AGE_SECONDS);
        const requested = requestHeader(c, "access-control-request-headers");
        if (requested) {
          headers["access-control-allow-headers"] = requested
            .split(",")
            .map((name) => name.trim())
            .join(",");
        }
      }
      return new Response(null, { status: 204, headers });
    }
    const outgoing = outgoingOf(c);
    if (outgoing) {
      outgoing.setHeader("vary", "Origin");
      if (allowOrigin) outgoing.setHeader("access-control-allow-origin", allowOrigin);
      await next();
      return;
    }
    await next();
    c.header("vary", "Origin", { append: true });
    if (allowOrigin) c.header("access-control-allow-origin", allowOrigin);
  };
}
