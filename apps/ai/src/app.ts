import { type Logger, SIGNATURE_HEADER, type StreamStore, verifyRequest } from "@chatgrid/broker";
import { type AiHealthResponse, DispatchRequestSchema, type DispatchResponse, ErrorCode } from "@chatgrid/protocol";
import { Hono } from "hono";
import type { AiMetrics } from "./metrics";

export interface AiAppDeps {
  node: string;
  store: Pick<StreamStore, "claim">;
  metrics: AiMetrics;
  providerName: string;
  redisReady: () => boolean;
  draining: () => boolean;
  running: () => number;
  maxConcurrent: number;
  /** Dispatches must be signed with it (docs/security.md "Node credentials"). */
  clusterSecret: string;
  /** Where an unexpected fault's detail goes (the caller only gets a generic internal_error). */
  log: Logger;
  /** Starts the run of a claimed attempt (in the background). */
  launch: (streamId: string, attempt: number, cancelRequested: boolean) => void;
}

const error = (code: string, message: string) => ({ error: { code, message } });

/** The AI node's internal HTTP API (never exposed publicly): dispatch, health, metrics. */
export function createAiApp(deps: AiAppDeps): Hono {
  const app = new Hono();

  app.post("/v1/streams", async (c) => {
    const text = await c.req.text();
    const signature = verifyRequest(deps.clusterSecret, c.req.header(SIGNATURE_HEADER), "POST", "/v1/streams", text);
    if (signature !== "ok") {
      deps.metrics.dispatches.inc({ result: "unauthorized" });
      deps.metrics.unauthorizedDispatches.inc({ reason: signature });
      return c.json(error(ErrorCode.unauthorized, "this call needs a valid node signature"), 401);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return c.json(error(ErrorCode.badRequest, "body is not JSON"), 400);
    }
    const parsed = DispatchRequestSchema.safeParse(body);
    if (!parsed.success) return c.json(error(ErrorCode.badRequest, parsed.error.issues[0]?.message ?? "invalid"), 400);
    if (deps.draining()) {
      deps.metrics.dispatches.inc({ result: "draining" });
      return c.json(error("draining", `${deps.node} is shutting down`), 503);
    }
    if (!deps.redisReady()) {
      deps.metrics.dispatches.inc({ result: "redis_down" });
      return c.json(error(ErrorCode.unavailable, "Redis is unreachable"), 503);
    }
    if (deps.running() >= deps.maxConcurrent) {
      deps.metrics.dispatches.inc({ result: "busy" });
      return c.json(error("busy", `${deps.node} runs ${deps.maxConcurrent} streams already`), 503);
    }
    const { streamId, attempt } = parsed.data;
    const claim = await deps.store.claim(streamId, attempt, deps.node);
    deps.metrics.dispatches.inc({ result: claim.status });
    if (claim.status === "unknown") return c.json(error(ErrorCode.streamUnknown, "no such stream"), 404);
    const response: DispatchResponse = { streamId, node: deps.node, status: claim.status };
    if (claim.status !== "claimed") return c.json(response, 409);
    deps.launch(streamId, attempt, claim.cancelRequested);
    return c.json(response, 202);
  });

  app.get("/health", (c) => {
    const redis = deps.redisReady() ? "up" : "down";
    const status = deps.draining() ? "draining" : redis === "up" ? "ok" : "degraded";
    const body: AiHealthResponse = {
      status,
      node: deps.node,
      redis,
      running: deps.running(),
      provider: deps.providerName,
    };
    return c.json(body, status === "ok" ? 200 : 503);
  });

  app.get("/metrics", async (c) => {
    deps.metrics.redisUp.set(deps.redisReady() ? 1 : 0);
    deps.metrics.streamsRunning.set(deps.running());
    return c.text(await deps.metrics.registry.metrics(), 200, { "content-type": deps.metrics.registry.contentType });
  });

  app.notFound((c) => c.json(error(ErrorCode.routeNotFound, "no such route"), 404));
  // The detail (often Redis's error text, with hosts or key names) goes to the log, never into the response.
  app.onError((err, c) => {
    deps.log.warn({ err, method: c.req.method, path: c.req.path }, "request failed");
    deps.metrics.httpErrors.inc();
    return c.json(error(ErrorCode.internal, "internal error"), 500);
  });
  return app;
}
