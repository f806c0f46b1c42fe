import type { HealthResponse } from "@chatgrid/protocol";
import type { Context } from "hono";
import type { ApiDeps } from "../http/context";

/** The gateway's view of its dependencies: degraded without Redis, 503 when no AI node is reachable. */
export function healthHandler(deps: ApiDeps) {
  return (c: Context) => {
    const redis = deps.redisReady() ? "up" : "down";
    const aiNodes = deps.balancer.list().map((n) => ({ name: n.name, url: n.url, healthy: n.healthy }));
    const body: HealthResponse = {
      status: redis === "up" ? "ok" : "degraded",
      node: deps.node,
      redis,
      aiNodes,
    };
    return c.json(body, aiNodes.some((n) => n.healthy) ? 200 : 503);
  };
}
