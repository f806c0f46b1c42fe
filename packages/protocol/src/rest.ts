import { z } from "zod";
import { LIMITS } from "./limits";

/** What an id is: 1 to 128 characters of [A-Za-z0-9_-] (the hot path tests this pattern instead of the schema). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** Ids are opaque to clients; bound them so a hostile id cannot cost memory or Redis key space. */
export const IdSchema = z.string().min(1).max(128).regex(ID_PATTERN, "ids are [A-Za-z0-9_-]");

export const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export const CreateSessionResponseSchema = z.object({ sessionId: IdSchema, token: z.string() });
export type CreateSessionResponse = z.infer<typeof CreateSessionResponseSchema>;

export const ChatRequestSchema = z.object({
  message: z.string().min(1).max(LIMITS.messageMaxChars),
  conversationId: IdSchema.optional(),
  clientMessageId: z.string().min(1).max(LIMITS.clientMessageIdMaxChars).optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const ChatAcceptedSchema = z.object({
  streamId: IdSchema,
  conversationId: IdSchema,
  messageId: IdSchema,
});
export type ChatAccepted = z.infer<typeof ChatAcceptedSchema>;

export const CancelRequestSchema = z.object({ streamId: IdSchema });
export type CancelRequest = z.infer<typeof CancelRequestSchema>;

export const CancelResponseSchema = z.object({ streamId: IdSchema, cancelled: z.boolean() });
export type CancelResponse = z.infer<typeof CancelResponseSchema>;

export const MessageStatusSchema = z.enum(["complete", "streaming", "cancelled", "error"]);
export type MessageStatus = z.infer<typeof MessageStatusSchema>;

export const HistoryMessageSchema = z.object({
  id: IdSchema,
  role: z.enum(["user", "assistant"]),
  content: z.string(),
  createdAt: z.string(),
  streamId: IdSchema.optional(),
  status: MessageStatusSchema,
  /** Why an assistant message has status `error` (the stream's `done.error`). */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type HistoryMessage = z.infer<typeof HistoryMessageSchema>;

/** What a history cursor looks like on the wire (opaque: base64url, at most 32 characters). */
export const HISTORY_CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/** Messages per `GET /api/history` page: the default, and the most a client may ask for. */
export const HISTORY_PAGE = { default: 50, max: 200 } as const;

/**
 * `GET /api/history?conversationId=&limit=&cursor=`: the newest `limit` messages (in order), or with `cursor` (a
 * previous page's `nextCursor`) the ones before that page. Query values arrive as text.
 */
export const HistoryQuerySchema = z.object({
  conversationId: IdSchema,
  limit: z.coerce.number().int().min(1).max(HISTORY_PAGE.max).default(HISTORY_PAGE.default),
  cursor: z.string().regex(HISTORY_CURSOR_PATTERN, "a cursor from a previous page's nextCursor").optional(),
});
export type HistoryQuery = z.infer<typeof HistoryQuerySchema>;

export const HistoryResponseSchema = z.object({
  conversationId: IdSchema,
  /** Oldest first within the page. */
  messages: z.array(HistoryMessageSchema),
  /** Present when older messages exist: pass it as `cursor` to get the page before this one. */
  nextCursor: z.string().optional(),
});
export type HistoryResponse = z.infer<typeof HistoryResponseSchema>;

export const ConversationSummarySchema = z.object({
  id: IdSchema,
  title: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ConversationSummary = z.infer<typeof ConversationSummarySchema>;

export const ConversationsResponseSchema = z.object({ conversations: z.array(ConversationSummarySchema) });
export type ConversationsResponse = z.infer<typeof ConversationsResponseSchema>;

export const AiNodeHealthSchema = z.object({ name: z.string(), url: z.string(), healthy: z.boolean() });
const healthBase = {
  status: z.enum(["ok", "degraded"]),
  node: z.string(),
  redis: z.enum(["up", "down"]),
};
/**
 * `GET /api/health` (public, through nginx): counts only, never an AI node's name or address (docs/protocol.md
 * "Health"). 503 while the gateway's Redis is down or no AI node is healthy. Strict, so a test that parses it fails
 * if internals are added.
 */
export const HealthResponseSchema = z.strictObject({
  ...healthBase,
  aiNodes: z.strictObject({ healthy: z.number().int().min(0), total: z.number().int().min(0) }),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;
/** `GET /health` on a gateway's internal port (METRICS_PORT, never proxied): every AI node with its URL. */
export const InternalHealthResponseSchema = z.object({
  ...healthBase,
  aiNodes: z.array(AiNodeHealthSchema),
});
export type InternalHealthResponse = z.infer<typeof InternalHealthResponseSchema>;
