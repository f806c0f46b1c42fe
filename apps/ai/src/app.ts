import {
  type Logger,
  type PromptMessage,
  readBodyText,
  requestHeader,
  SIGNATURE_FORMAT,
  SIGNATURE_HEADER,
  type SignatureCheck,
  type StreamStore,
  verifyRequest,
} from "@chatgrid/broker";
import {
  type AiHealthResponse,
  DispatchRequestSchema,
  type DispatchResponse,
  ErrorCode,
  type LiveResponse,
} from "@chatgrid/protocol";
import { type Context, Hono } from "hono";
import type { AiMetrics } from "./metrics";
import type { ClaimedRun } from "./stream-run";

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
  /** The prompt of a conversation's user message (read beside the claim of a stream's first dispatch). */
  readPrompt: (conversationId: string, userMessageId: string) => Promise<PromptMessage[]>;
  /** Starts the run of a claimed attempt (in the background), with what the claim gave it. */
  launch: (streamId: string, attempt: number, cancelRequested: boolean, claimed: ClaimedRun) => void;
}

const error = (code: string, message: string) => ({ error: { code, message } });

/** A dispatch body is `{"streamId","attempt"}`: anything near this size is not one. */
const DISPATCH_MAX_BYTES = 4096;

/** The AI node's internal HTTP API (never exposed publicly): dispatch, health (readiness), live (liveness), metrics. */
export function createAiApp(deps: AiAppDeps): Hono {
  const app = new Hono();

  const unauthorized = (c: Context, reason: SignatureCheck) => {
    deps.metrics.dispatches.inc({ result: "unauthorized" });
    deps.metrics.unauthorizedDispatches.inc({ reason });
    return c.json(error(ErrorCode.unauthorized, "this call needs a valid node signature"), 401);
  };

  app.post(
    "/v1/streams",
    // A caller without a well-formed signature is refused before its body is read, and no body is read past 4 KiB
    // (a dispatch is about 60 bytes): reaching the port costs the node nothing.
    async (c, next) => {
      const header = requestHeader(c, SIGNATURE_HEADER);
      if (!header) return unauthorized(c, "missing");
      if (!SIGNATURE_FORMAT.test(header)) return unauthorized(c, "malformed");
      await next();
    },
    async (c) => {
      const body = await readBodyText(c, DISPATCH_MAX_BYTES);
      if (!body.ok) {
        return body.reason === "too_large"
          ? c.json(error(ErrorCode.payloadTooLarge, `dispatch bodies are at most ${DISPATCH_MAX_BYTES} bytes`), 413)
          : c.json(error(ErrorCode.badRequest, "the body ended before its length"), 400);
      }
      const { text } = body;
      const signature = verifyRequest(
        deps.clusterSecret,
        requestHeader(c, SIGNATURE_HEADER),
        "POST",
        "/v1/streams",
        text,
      );
      if (signature !== "ok") return unauthorized(c, signature);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return c.json(error(ErrorCode.badRequest, "body is not JSON"), 400);
      }
      const parsed = DispatchRequestSchema.safeParse(json);
      if (!parsed.success)
        return c.json(error(ErrorCode.badRequest, parsed.error.issues[0]?.message ?? "invalid"), 400);
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
      const { streamId, attempt, start } = parsed.data;
      const claiming = deps.store.claim(streamId, attempt, deps.node, start);
      // A stream's first dispatch names its conversation and user message: the prompt is read in the claim's round
      // trip (sent right behind it), not after it. The claim checks those ids against the stream; if they are not
      // its own, nothing runs and this read is dropped.
      const prompt = start ? deps.readPrompt(start.conversationId, start.userMessageId) : undefined;
      prompt?.catch(() => undefined);
      const claim = await claiming;
      deps.metrics.dispatches.inc({ result: claim.status });
      if (claim.status === "unknown") return c.json(error(ErrorCode.streamUnknown, "no such stream"), 404);
      const response: DispatchResponse = { streamId, node: deps.node, status: claim.status };
      if (claim.status !== "claimed") return c.json(response, 409);
      deps.launch(streamId, attempt, claim.cancelRequested, {
        meta: claim.meta,
        started: claim.started,
        ...(prompt ? { prompt } : {}),
      });
      return c.json(response, 202);
    },
  );

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

  // Liveness: 200 whenever the event loop answers. It reads nothing (not Redis, not the drain flag, not the runs), so
  // an orchestrator that restarts on it leaves the node alone through a Redis failover and lets a drain finish;
  // readiness is /health above (docs/operations.md "Liveness and readiness"). Like /health, it needs no signature.
  app.get("/live", (c) => {
    const body: LiveResponse = { status: "live", node: deps.node };
    return c.json(body, 200);
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
