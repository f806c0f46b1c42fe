import { z } from "zod";
import { IdSchema } from "./rest";
import { StreamErrorSchema, UsageSchema } from "./ws";

/**
 * Events on Kafka (topic `chatgrid.events`, key = sessionId, so a session's events keep their order).
 * Every event has `type`, `v` (schema version), `at` (ISO time), `node` (who observed it) and the ids it concerns.
 * The node that observes a fact emits it: AI nodes the stream lifecycle (so a completion is recorded even when no
 * socket is open), gateways sessions, requests, dispatch, takeover and AI node health. Never message text or tokens.
 */
export const EVENT_VERSION = 1;

const base = {
  /** Unique per event: delivery is at least once (a retry after a lost ack may repeat one), so consumers dedupe on it. */
  id: z.string(),
  v: z.literal(EVENT_VERSION),
  at: z.string(),
  node: z.string(),
};

const streamIds = {
  sessionId: IdSchema,
  streamId: IdSchema,
};

export const SessionOpenedEventSchema = z.object({
  type: z.literal("session.opened"),
  ...base,
  sessionId: IdSchema,
  /** `rest`: POST /api/sessions; `ws`: a socket said hello. */
  via: z.enum(["rest", "ws"]),
  /** True when the session was created now (no token given). */
  created: z.boolean(),
});

export const SessionClosedEventSchema = z.object({
  type: z.literal("session.closed"),
  ...base,
  sessionId: IdSchema,
  /** The WebSocket close code of the socket that ended. */
  closeCode: z.number().int(),
});

export const ChatRequestedEventSchema = z.object({
  type: z.literal("chat.requested"),
  ...base,
  ...streamIds,
  conversationId: IdSchema,
  messageId: IdSchema,
  newConversation: z.boolean(),
  messageChars: z.number().int().min(0),
});

export const StreamDispatchedEventSchema = z.object({
  type: z.literal("stream.dispatched"),
  ...base,
  ...streamIds,
  attempt: z.number().int().min(1),
  aiNode: z.string(),
  /** AI nodes tried, this one included. */
  tries: z.number().int().min(1),
});

export const StreamStartedEventSchema = z.object({
  type: z.literal("stream.started"),
  ...base,
  ...streamIds,
  attempt: z.number().int().min(1),
  aiNode: z.string(),
  /** `continued`: a takeover that carries on seamlessly; `restarted`: a takeover that emitted reset. */
  mode: z.enum(["fresh", "continued", "restarted"]),
});

const outcome = {
  attempt: z.number().int().min(1),
  aiNode: z.string(),
  /** Chunks this attempt published. */
  chunks: z.number().int().min(0),
  durationMs: z.number().min(0),
  /** From the claim to the first chunk; absent when none came. */
  timeToFirstChunkMs: z.number().min(0).optional(),
};

export const StreamCompletedEventSchema = z.object({
  type: z.literal("stream.completed"),
  ...base,
  ...streamIds,
  ...outcome,
  finishReason: z.enum(["stop", "length", "timeout"]),
  usage: UsageSchema.optional(),
});

export const StreamCancelledEventSchema = z.object({
  type: z.literal("stream.cancelled"),
  ...base,
  ...streamIds,
  ...outcome,
});

export const StreamFailedEventSchema = z.object({
  type: z.literal("stream.failed"),
  ...base,
  ...streamIds,
  attempt: z.number().int().min(1),
  aiNode: z.string().optional(),
  error: StreamErrorSchema,
});

export const StreamTakenOverEventSchema = z.object({
  type: z.literal("stream.taken_over"),
  ...base,
  ...streamIds,
  attempt: z.number().int().min(1),
  fromNode: z.string(),
  toNode: z.string(),
});

export const AiNodeDownEventSchema = z.object({
  type: z.literal("ai_node.down"),
  ...base,
  aiNode: z.string(),
  url: z.string(),
  reason: z.string(),
});

export const AiNodeUpEventSchema = z.object({
  type: z.literal("ai_node.up"),
  ...base,
  aiNode: z.string(),
  url: z.string(),
});

export const SlowConsumerClosedEventSchema = z.object({
  type: z.literal("socket.slow_consumer_closed"),
  ...base,
  sessionId: IdSchema,
  bufferedBytes: z.number().int().min(0),
});

export const ChatgridEventSchema = z.discriminatedUnion("type", [
  SessionOpenedEventSchema,
  SessionClosedEventSchema,
  ChatRequestedEventSchema,
  StreamDispatchedEventSchema,
  StreamStartedEventSchema,
  StreamCompletedEventSchema,
  StreamCancelledEventSchema,
  StreamFailedEventSchema,
  StreamTakenOverEventSchema,
  AiNodeDownEventSchema,
  AiNodeUpEventSchema,
  SlowConsumerClosedEventSchema,
]);
export type ChatgridEvent = z.infer<typeof ChatgridEventSchema>;
export type ChatgridEventType = ChatgridEvent["type"];

/** An event as its producer writes it: `id`, `v`, `at` and `node` are filled in by the producer. */
export type EventInput = ChatgridEvent extends infer E
  ? E extends ChatgridEvent
    ? Omit<E, "id" | "v" | "at" | "node">
    : never
  : never;
