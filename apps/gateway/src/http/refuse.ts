import type { Context } from "hono";
import type { ApiDeps } from "./context";
import { apiError } from "./errors";

/** The limits a request can be refused by, as counted in `chatgrid_limit_refusals_total{limit}`. */
export type RestLimit = "session_rate" | "session_create" | "message_chars" | "streams_session" | "streams_address";

/** A 429 from one of the limits of docs/security.md: counted, with its code and a Retry-After in seconds. */
export function refuse(
  c: Context,
  deps: Pick<ApiDeps, "metrics">,
  limit: RestLimit,
  code: string,
  message: string,
  retryAfterSeconds: number,
): Response {
  deps.metrics.limitRefusals.inc({ limit });
  return apiError(c, 429, code, message, { "retry-after": String(retryAfterSeconds) });
}
