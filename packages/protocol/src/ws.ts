import { z } from "zod";
import { IdSchema } from "./rest";

/** `afterSeq` absent means "from the beginning" (the `start` event, seq 0). */
export const ResumePointSchema = z.object({
  streamId: IdSchema,
  afterSeq: z.number().int().min(0).optional(),
});
export type ResumePoint = z.infer<typeof ResumePointSchema>;

/** A client may resume at most this many streams in one frame; more is a bad request. */
export const MAX_RESUME_STREAMS = 256;

export const HelloFrameSchema = z.object({
  type: z.literal("hello"),
  token: z.string().min(1).max(256).optional(),
  resume: z.array(ResumePointSchema).max(MAX_RESUME_STREAMS).optional(),
});
export const ResumeFrameSchema = z.object({
  type: z.literal("resume"),
  streams: z.array(ResumePointSchema).max(MAX_RESUME_STREAMS),
});
export const PingFrameSchema = z.object({ type: z.literal("ping") });

export const ClientFrameSchema = z.discriminatedUnion("type", [HelloFrameSchema, ResumeFrameSchema, PingFrameSchema]);
export type HelloFrame = z.infer<typeof HelloFrameSchema>;
export type ResumeFrame = z.infer<typeof ResumeFrameSchema>;
export type ClientFrame = z.infer<typeof ClientFrameSchema>;

/**
 * `length`: the answer reached its maximum length (the provider's, or MAX_ANSWER_TOKENS / MAX_ANSWER_CHARS);
 * `timeout`: it reached its maximum duration (STREAM_MAX_DURATION_MS) and was stopped there.
 */
export const FinishReasonSchema = z.enum(["stop", "length", "timeout", "cancelled", "error"]);
export type FinishReason = z.infer<typeof FinishReasonSchema>;

export const StreamErrorSchema = z.object({ code: z.string(), message: z.string() });
export type StreamError = z.infer<typeof StreamErrorSchema>;

export const UsageSchema = z.object({
  promptTokens: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
});
export type Usage = z.infer<typeof UsageSchema>;

export const WelcomeFrameSchema = z.object({
  type: z.literal("welcome"),
  sessionId: IdSchema,
  token: z.string(),
  node: z.string(),
});
export const StartFrameSchema = z.object({
  type: z.literal("start"),
  streamId: IdSchema,
  conversationId: IdSchema,
  messageId: IdSchema,
  seq: z.literal(0),
  aiNode: z.string(),
});
export const ChunkFrameSchema = z.object({
  type: z.literal("chunk"),
  streamId: IdSchema,
  seq: z.number().int().min(1),
  delta: z.string(),
});
export const ResetFrameSchema = z.object({
  type: z.literal("reset"),
  streamId: IdSchema,
  seq: z.number().int().min(1),
  /** The AI node that starts the text over (the stream moved to it). */
  aiNode: z.string().optional(),
});
export const DoneFrameSchema = z.object({
  type: z.literal("done"),
  streamId: IdSchema,
  seq: z.number().int().min(0),
  finishReason: FinishReasonSchema,
  error: StreamErrorSchema.optional(),
  usage: UsageSchema.optional(),
  /** The AI node that finished the stream (after a takeover, not the one in `start`); absent when a gateway ended it. */
  aiNode: z.string().optional(),
});
export const SnapshotFrameSchema = z.object({
  type: z.literal("snapshot"),
  streamId: IdSchema,
  seq: z.number().int().min(0),
  content: z.string(),
});
export const ErrorFrameSchema = z.object({
  type: z.literal("error"),
  code: z.string(),
  message: z.string(),
  streamId: IdSchema.optional(),
});
export const PongFrameSchema = z.object({ type: z.literal("pong") });

/** Events that belong to a stream and carry a seq: what Redis stores and publishes. */
export const StreamEventSchema = z.discriminatedUnion("type", [
  StartFrameSchema,
  ChunkFrameSchema,
  ResetFrameSchema,
  DoneFrameSchema,
  SnapshotFrameSchema,
]);
export type StreamEvent = z.infer<typeof StreamEventSchema>;

export const ServerFrameSchema = z.discriminatedUnion("type", [
  WelcomeFrameSchema,
  StartFrameSchema,
  ChunkFrameSchema,
  ResetFrameSchema,
  DoneFrameSchema,
  SnapshotFrameSchema,
  ErrorFrameSchema,
  PongFrameSchema,
]);
export type WelcomeFrame = z.infer<typeof WelcomeFrameSchema>;
export type StartFrame = z.infer<typeof StartFrameSchema>;
export type ChunkFrame = z.infer<typeof ChunkFrameSchema>;
export type ResetFrame = z.infer<typeof ResetFrameSchema>;
export type DoneFrame = z.infer<typeof DoneFrameSchema>;
export type SnapshotFrame = z.infer<typeof SnapshotFrameSchema>;
export type ErrorFrame = z.infer<typeof ErrorFrameSchema>;
export type PongFrame = z.infer<typeof PongFrameSchema>;
export type ServerFrame = z.infer<typeof ServerFrameSchema>;
