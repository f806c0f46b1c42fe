import { z } from "zod";
import { LIMITS } from "./limits";

/** Ids are opaque to clients; bound them so a hostile id cannot cost memory or Redis key space. */
export const IdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, "ids are [A-Za-z0-9_-]");

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

export const HistoryQuerySchema = z.object({ conversationId: IdSchema });

export const HistoryResponseSchema = z.object({
  conversationId: IdSchema,
  messages: z.array(HistoryMessageSchema),
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
export const HealthResponseSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  node: z.string(),
  redis: z.enum(["up", "down"]),
  aiNodes: z.array(AiNodeHealthSchema),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;
