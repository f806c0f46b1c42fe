import { declaresMoreThan, requestHeader } from "@chatgrid/broker";
import { ErrorCode, LIMITS } from "@chatgrid/protocol";
import { type Context, Hono } from "hono";
import type { Redis } from "ioredis";
import { limitSessionRate, requireSession } from "./http/auth";
import { clientAddress } from "./http/client-address";
import type { ApiDeps, ApiEnv } from "./http/context";
import { apiCors } from "./http/cors";
import { apiError } from "./http/errors";
import { bodyTooLarge } from "./http/json-body";
import { isOriginAllowed } from "./http/origin";
import { refuse } from "./http/refuse";
import { cancelRoutes } from "./routes/cancel";
import { chatRoutes } from "./routes/chat";
import { healthHandler } from "./routes/health";
import { historyRoutes } from "./routes/history";

export interface GatewayAppOptions {
  allowedOrigins: string[];
  /** Accepts a WebSocket upgrade of `c` for a client at `address`; false when `c` is no upgrade request. */
  acceptSocket: (c: Context, address: string) => boolean;
}

/** Redis being away shows up as these errors; the request gets 503 rather than 500. */
function isRedisUnavailable(error: Error): boolean {
  return /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|max retries per request/i.test(
    error.message,
  );
}

/**
 * The public REST + WebSocket surface of a gateway (docs/protocol.md §1–3), registered on `app`: the same instance
 * upgrade requests are routed through, so its 404 and error handlers are ours too.
 */
export function registerGatewayRoutes(
  app: Hono<ApiEnv>,
  deps: ApiDeps,
  redis: Redis,
  options: GatewayAppOptions,
): Hono<ApiEnv> {
  app.use("*", async (c, next) => {
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    deps.metrics.restRequests.inc({ route, status: String(c.res.status) });
  });

  app.use(
    "/api/*",
    apiCors(options.allowedOrigins),
    // A declared length over the bound is refused here, before auth; the routes that read a body count its bytes
    // (readJson). Hono's bodyLimit would build the web Request of every request to look at its body.
    async (c, next) => {
      if (declaresMoreThan(requestHeader(c, "content-length"), LIMITS.maxBodyBytes)) return bodyTooLarge(c);
      await next();
    },
  );

  app.use("/api/*", async (c, next) => {
    c.set("clientAddress", clientAddress(c, deps.clientAddressHeader));
    await next();
  });

  app.get("/api/health", healthHandler(deps));
  app.post("/api/sessions", async (c) => {
    // New sessions cost Redis memory for days: bounded per address, like a hello without a token.
    const decision = await deps.sessionCreateLimiter.check(c.get("clientAddress"));
    if (!decision.allowed) {
      const message = "too many new sessions from this address";
      return refuse(c, deps, "session_create", ErrorCode.rateLimited, message, decision.retryAfterSeconds);
    }
    const session = await deps.sessions.create();
    deps.events.emit({ type: "session.opened", sessionId: session.sessionId, via: "rest", created: true });
    return c.json(session, 201);
  });

  const authed = new Hono<ApiEnv>();
  authed.use("*", requireSession(deps));
  // Cancel comes before the rate limit: a user over their rate can always stop their own answers.
  authed.route("/cancel", cancelRoutes(deps));
  // Chat charges the session's rate itself, in the one Redis call of its checks (same order, routes/chat.ts).
  authed.route("/chat", chatRoutes(deps, redis));
  authed.use("*", limitSessionRate(deps));
  authed.route("/", historyRoutes(deps));
  app.route("/api", authed);

  app.get(
    "/ws/chat",
    async (c, next) => {
      if (!isOriginAllowed(c.req.header("origin"), c.req.header("host"), options.allowedOrigins)) {
        return apiError(c, 403, ErrorCode.forbiddenOrigin, "this origin may not open a socket");
      }
      await next();
    },
    async (c, next) => {
      // Nothing of `c` is kept past this request: the socket gets the client's address only.
      if (options.acceptSocket(c, clientAddress(c, deps.clientAddressHeader))) return new Response();
      await next();
    },
  );

  app.notFound((c) => apiError(c, 404, ErrorCode.routeNotFound, "no such route"));
  app.onError((error, c) => {
    if (isRedisUnavailable(error))
      return apiError(c, 503, ErrorCode.unavailable, "storage is unavailable; retry shortly");
    deps.log.error({ err: error }, "request failed");
    return apiError(c, 500, ErrorCode.internal, "internal error");
  });
  return app;
}
