import { HealthResponseSchema, InternalHealthResponseSchema } from "@chatgrid/protocol";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type HealthDeps, healthHandler, internalHealthHandler } from "./health";

const NODES = [
  { name: "ai-1", url: "http://10.0.4.11:9101", healthy: true },
  { name: "ai-2", url: "http://ai-2.internal:9102", healthy: false },
  { name: "ai-3", url: "http://10.0.4.13:9103", healthy: true },
];

function apps(nodes: typeof NODES, redisUp = true) {
  const deps: HealthDeps = { node: "gateway-2", redisReady: () => redisUp, balancer: { list: () => nodes } };
  const app = new Hono();
  app.get("/api/health", healthHandler(deps));
  app.get("/health", internalHealthHandler(deps));
  return app;
}

describe("GET /api/health (public)", () => {
  it("shows status, node, Redis and AI node counts, and no AI node name or address", async () => {
    const response = await apps(NODES).request("/api/health");
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = HealthResponseSchema.parse(JSON.parse(text));
    expect(body).toEqual({ status: "ok", node: "gateway-2", redis: "up", aiNodes: { healthy: 2, total: 3 } });
    expect(text).not.toMatch(/ai-\d|http|10\.0\.4|internal|910\d/);
  });

  it("503 when no AI node is healthy; degraded without Redis", async () => {
    const none = NODES.map((n) => ({ ...n, healthy: false }));
    const response = await apps(none, false).request("/api/health");
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      status: "degraded",
      node: "gateway-2",
      redis: "down",
      aiNodes: { healthy: 0, total: 3 },
    });
    expect((await apps([]).request("/api/health")).status).toBe(503);
  });
});

describe("GET /health (internal port)", () => {
  it("keeps the full view: every AI node with its name, URL and health, and the same status codes", async () => {
    const response = await apps(NODES).request("/health");
    expect(response.status).toBe(200);
    expect(InternalHealthResponseSchema.parse(await response.json())).toEqual({
      status: "ok",
      node: "gateway-2",
      redis: "up",
      aiNodes: NODES,
    });
    expect((await apps(NODES.map((n) => ({ ...n, healthy: false }))).request("/health")).status).toBe(503);
  });

  it("the public schema refuses the internal shape, so a leak cannot pass as public", () => {
    expect(HealthResponseSchema.safeParse({ status: "ok", node: "g", redis: "up", aiNodes: NODES }).success).toBe(
      false,
    );
    expect(
      HealthResponseSchema.safeParse({
        status: "ok",
        node: "g",
        redis: "up",
        aiNodes: { healthy: 1, total: 1 },
        urls: ["http://x"],
      }).success,
    ).toBe(false);
  });
});
