import { z } from "zod";
import { IdSchema } from "./rest";

/**
 * The internal HTTP API between gateways and AI nodes (never exposed by nginx).
 * It lives here because both sides must agree on it byte for byte, like the public contract.
 */

/**
 * POST /v1/streams: run attempt `attempt` of a stream the gateway has already written to Redis. A stream's first
 * dispatch also carries its ids (`start`): the node's claim checks them against the stream and writes its `start`,
 * and the node reads the prompt beside the claim (docs/protocol.md "Internal AI node API"). A takeover's dispatch
 * has none: the node reads them from the stream.
 */
export const DispatchStartSchema = z.strictObject({
  sessionId: IdSchema,
  conversationId: IdSchema,
  messageId: IdSchema,
  userMessageId: IdSchema,
});
export type DispatchStart = z.infer<typeof DispatchStartSchema>;

export const DispatchRequestSchema = z.strictObject({
  streamId: IdSchema,
  attempt: z.number().int().min(1),
  start: DispatchStartSchema.optional(),
});
export type DispatchRequest = z.infer<typeof DispatchRequestSchema>;

/**
 * 202: this node claimed the attempt and runs it.
 * 409 `already_claimed`: another node claimed it (a retried dispatch); the stream runs, the dispatch succeeded.
 * 409 `stale_attempt`: the attempt was superseded (or the stream ended); nothing to do.
 * 503: draining or unhealthy; try the next node.
 */
export const DispatchResponseSchema = z.object({
  streamId: IdSchema,
  node: z.string(),
  status: z.enum(["claimed", "already_claimed", "stale_attempt"]),
});
export type DispatchResponse = z.infer<typeof DispatchResponseSchema>;

export const AiHealthResponseSchema = z.object({
  status: z.enum(["ok", "degraded", "draining"]),
  node: z.string(),
  redis: z.enum(["up", "down"]),
  running: z.number().int().min(0),
  provider: z.string(),
});
export type AiHealthResponse = z.infer<typeof AiHealthResponseSchema>;

/**
 * `GET /live` on an AI node's port and on a gateway's internal port (METRICS_PORT): liveness, not readiness. 200
 * whenever the process's event loop answers, whatever Redis, the AI nodes, Kafka or a drain say; an orchestrator
 * restarts a container on this, and routes traffic on `/health` (docs/operations.md "Liveness and readiness").
 */
export const LiveResponseSchema = z.strictObject({ status: z.literal("live"), node: z.string() });
export type LiveResponse = z.infer<typeof LiveResponseSchema>;
