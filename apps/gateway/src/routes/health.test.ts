import { HealthResponseSchema, InternalHealthResponseSchema, LiveResponseSchema } from "@chatgrid/protocol";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type HealthDeps, healthHandler, registerInternalHealthRoutes } from "./health";

const NODES = [
  { name: "ai-1", url: "http://10.0.4.11:9101", healthy: true },
  { name: "ai-2", url: "http://ai-2.internal:9102", healthy: false },
  { name: "ai-3", url: "http://10.0.4.13:9103", healthy: true },
];

function apps(nodes: typeof NODES, redisUp = true) {
  const deps: HealthDeps = { node: "gateway-2", redisReady: () => redisUp, balancer: { list: () => nodes } };
  const app = new Hono();
  app.get("/api/health", healthHandler(deps));
  return registerInternalHealthRoutes(app, deps);
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

  it("503 while this gateway's own Redis is down, even with healthy AI nodes (it could serve nothing)", async () => {
    for (const path of ["/api/health", "/health"]) {
      const response = await apps(NODES, false).request(path);
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ status: "degraded", redis: "down" });
    }
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

describe("GET /live (internal port)", () => {
  it("200 with the node's name while readiness is 503: Redis down, no AI node healthy, or none known", async () => {
    const down = NODES.map((n) => ({ ...n, healthy: false }));
    for (const app of [apps(down, false), apps([], false), apps(down, true)]) {
      expect((await app.request("/health")).status).toBe(503);
      const live = await app.request("/live");
      expect(live.status).toBe(200);
      expect(live.headers.get("content-type")).toMatch(/^application\/json/);
      expect(LiveResponseSchema.parse(await live.json())).toEqual({ status: "live", node: "gateway-2" });
    }
  });

  it("reads nothing: with Redis's check and the AI node list both throwing, /live is 200 and /health fails", async () => {
    const deps: HealthDeps = {
      node: "gateway-7",
      redisReady: () => {
        throw new Error("Redis check must not be called");
      },
      balancer: {
        list: () => {
          throw new Error("AI node list must not be called");
        },
      },
    };
    const failures: string[] = [];
    const app = registerInternalHealthRoutes(new Hono(), deps);
    app.onError((error, c) => {
      failures.push(error.message);
      return c.text("failed", 500);
    });
    const live = await app.request("/live");
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "live", node: "gateway-7" });
    expect(failures).toEqual([]);
    // The readiness route does read them, which shows the fakes above were armed.
    expect((await app.request("/health")).status).toBe(500);
    expect(failures).toEqual(["Redis check must not be called"]);
  });

  it("only GET, and the schema is strict (nothing of the readiness view leaks into it)", async () => {
    expect((await apps(NODES).request("/live", { method: "POST" })).status).toBe(404);
    expect(LiveResponseSchema.safeParse({ status: "live", node: "g", redis: "up" }).success).toBe(false);
    expect(LiveResponseSchema.safeParse({ status: "ok", node: "g" }).success).toBe(false);
  });
});
