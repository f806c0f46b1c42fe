import type { HealthResponse, InternalHealthResponse, LiveResponse } from "@chatgrid/protocol";
import type { Context, Hono } from "hono";
import type { ApiDeps } from "../http/context";

/** What health needs (ApiDeps has it; tests pass a fake balancer). */
export interface HealthDeps extends Pick<ApiDeps, "node" | "redisReady"> {
  balancer: { list(): { name: string; url: string; healthy: boolean }[] };
}

/**
 * What both views share; the status code is the same for both: 503 when this gateway's Redis is down (it can resolve
 * no session, subscribe no channel and dispatch nothing, even while the AI nodes are up) or no AI node is healthy.
 */
function view(deps: HealthDeps) {
  const redis = deps.redisReady() ? ("up" as const) : ("down" as const);
  const aiNodes = deps.balancer.list().map((n) => ({ name: n.name, url: n.url, healthy: n.healthy }));
  const healthy = aiNodes.filter((n) => n.healthy).length;
  const base = { status: redis === "up" ? ("ok" as const) : ("degraded" as const), node: deps.node, redis };
  const ready = redis === "up" && healthy > 0;
  return { base, aiNodes, healthy, code: ready ? (200 as const) : (503 as const) };
}

/**
 * `GET /api/health` (public, through nginx): status, node, Redis up/down and AI node counts. No names or URLs:
 * internal addresses are not the public's business (docs/protocol.md "Health").
 */
export function healthHandler(deps: HealthDeps) {
  return (c: Context) => {
    const { base, aiNodes, healthy, code } = view(deps);
    const body: HealthResponse = { ...base, aiNodes: { healthy, total: aiNodes.length } };
    return c.json(body, code);
  };
}

/** `GET /health` on the internal port: the full view, every AI node with its name, URL and health. */
export function internalHealthHandler(deps: HealthDeps) {
  return (c: Context) => {
    const { base, aiNodes, code } = view(deps);
    const body: InternalHealthResponse = { ...base, aiNodes };
    return c.json(body, code);
  };
}

/**
 * `GET /live` on the internal port: liveness. 200 as long as this process's event loop answers; it reads nothing
 * (no Redis, no AI node, no Kafka), so an orchestrator that restarts on it does not restart every gateway during an
 * AI node outage or a Redis failover. Readiness stays `/health` (docs/operations.md "Liveness and readiness").
 */
export function liveHandler(node: string) {
  return (c: Context) => {
    const body: LiveResponse = { status: "live", node };
    return c.json(body, 200);
  };
}

/** The internal port's health routes: `/health` (readiness) and `/live` (liveness). */
export function registerInternalHealthRoutes(app: Hono, deps: HealthDeps): Hono {
  app.get("/health", internalHealthHandler(deps));
  app.get("/live", liveHandler(deps.node));
  return app;
}
