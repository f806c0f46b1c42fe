import type { ConversationSummary, HistoryMessage, MessageStatus, StreamError } from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { newId } from "./ids";
import { keys } from "./keys";
import type { SlotKeys } from "./stream-slots";
import type { StreamStore } from "./stream-store";

export interface Turn {
  conversationId: string;
  userMessageId: string;
  assistantMessageId: string;
  streamId: string;
  newConversation: boolean;
}

/** A message as the AI node feeds it to the provider. */
export interface PromptMessage {
  role: "user" | "assistant";
  content: string;
}

const TITLE_MAX = 80;

/** Derives a conversation's title from its first message: the first line, trimmed, at most 80 characters. */
export function titleFrom(message: string): string {
  const firstLine = message.trim().split("\n")[0]?.trim() ?? "";
  return firstLine.length > TITLE_MAX ? `${firstLine.slice(0, TITLE_MAX - 1)}…` : firstLine || "New chat";
}

/** The error a stream ended with, from its stored `done` frame. */
function errorOf(doneFrame: string | null | undefined): StreamError | undefined {
  if (!doneFrame) return undefined;
  try {
    const error = (JSON.parse(doneFrame) as { error?: StreamError }).error;
    return error && typeof error.code === "string" && typeof error.message === "string" ? error : undefined;
  } catch {
    return undefined;
  }
}

function statusOf(streamStatus: string | null, finishReason: string | null): MessageStatus {
  if (streamStatus !== "done") return "streaming";
  if (finishReason === "cancelled") return "cancelled";
  if (finishReason === "error") return "error";
  return "complete";
}

/** Conversations and their messages. An assistant message's text and status live with its stream. */
export class ConversationStore {
  constructor(
    private readonly redis: Redis,
    private readonly streams: StreamStore,
  ) {}

  private get ttl(): number {
    return this.streams.options.retentionTtlMs;
  }

  /** The session that owns a conversation, if it exists. */
  async ownerOf(conversationId: string): Promise<string | undefined> {
    return (await this.redis.hget(keys.conversation(conversationId), "sessionId")) ?? undefined;
  }

  /**
   * Writes the user message, the (empty) assistant message and the queued stream in one transaction. The caller
   * may choose the stream id (it took the stream's concurrency slots under it) and pass those slots.
   */
  async beginTurn(
    sessionId: string,
    message: string,
    conversationId?: string,
    stream: { streamId?: string; slots?: SlotKeys } = {},
  ): Promise<Turn> {
    const now = Date.now();
    const createdAt = new Date(now).toISOString();
    const turn: Turn = {
      conversationId: conversationId ?? newId("conv"),
      userMessageId: newId("msg"),
      assistantMessageId: newId("msg"),
      streamId: stream.streamId ?? newId("st"),
      newConversation: conversationId === undefined,
    };
    const conv = keys.conversation(turn.conversationId);
    const msgs = keys.conversationMessages(turn.conversationId);
    const tx = this.redis.multi();
    if (turn.newConversation) {
      tx.hset(
        conv,
        "id",
        turn.conversationId,
        "sessionId",
        sessionId,
        "title",
        titleFrom(message),
        "createdAt",
        createdAt,
      );
    }
    tx.hset(conv, "updatedAt", createdAt)
      .rpush(msgs, turn.userMessageId, turn.assistantMessageId)
      .hset(
        keys.message(turn.userMessageId),
        "id",
        turn.userMessageId,
        "role",
        "user",
        "content",
        message,
        "createdAt",
        createdAt,
      )
      .hset(
        keys.message(turn.assistantMessageId),
        "id",
        turn.assistantMessageId,
        "role",
        "assistant",
        "createdAt",
        createdAt,
        "streamId",
        turn.streamId,
      )
      .zadd(keys.sessionConversations(sessionId), now, turn.conversationId);
    for (const key of [
      conv,
      msgs,
      keys.message(turn.userMessageId),
      keys.message(turn.assistantMessageId),
      keys.sessionConversations(sessionId),
    ]) {
      tx.pexpire(key, this.ttl);
    }
    for (const [command, ...args] of this.streams.createCommands(
      {
        streamId: turn.streamId,
        sessionId,
        conversationId: turn.conversationId,
        messageId: turn.assistantMessageId,
        userMessageId: turn.userMessageId,
        ...(stream.slots ? { slots: stream.slots } : {}),
      },
      now,
    )) {
      tx.call(command, ...args);
    }
    await tx.exec();
    return turn;
  }

  /** Undoes a turn no AI node accepted, so a retry does not leave a dangling user message behind. */
  async rollbackTurn(sessionId: string, turn: Turn): Promise<void> {
    const tx = this.redis
      .multi()
      .lrem(keys.conversationMessages(turn.conversationId), 1, turn.userMessageId)
      .lrem(keys.conversationMessages(turn.conversationId), 1, turn.assistantMessageId)
      .del(keys.message(turn.userMessageId), keys.message(turn.assistantMessageId));
    if (turn.newConversation) {
      tx.del(keys.conversation(turn.conversationId), keys.conversationMessages(turn.conversationId)).zrem(
        keys.sessionConversations(sessionId),
        turn.conversationId,
      );
    }
    await tx.exec();
    await this.streams.delete(turn.streamId);
  }

  async history(conversationId: string): Promise<HistoryMessage[]> {
    const ids = await this.redis.lrange(keys.conversationMessages(conversationId), 0, -1);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(keys.message(id));
    const rows = ((await pipe.exec()) ?? []).map(([, row]) => row as Record<string, string>);
    const assistant = rows.filter((row) => row.role === "assistant" && row.streamId);
    const streamPipe = this.redis.pipeline();
    for (const row of assistant) {
      const streamId = row.streamId as string;
      streamPipe.hmget(keys.streamMeta(streamId), "status", "finishReason", "doneFrame").get(keys.streamText(streamId));
    }
    const streamRows = (await streamPipe.exec()) ?? [];
    const streamInfo = new Map<string, { status: MessageStatus; content: string; error?: StreamError }>();
    assistant.forEach((row, index) => {
      const [status, finishReason, doneFrame] = (streamRows[index * 2]?.[1] as (string | null)[] | undefined) ?? [];
      const content = (streamRows[index * 2 + 1]?.[1] as string | null) ?? "";
      const messageStatus = statusOf(status ?? null, finishReason ?? null);
      const error = messageStatus === "error" ? errorOf(doneFrame) : undefined;
      streamInfo.set(row.streamId as string, { status: messageStatus, content, ...(error ? { error } : {}) });
    });
    const messages: HistoryMessage[] = [];
    for (const row of rows) {
      if (!row.id) continue;
      if (row.role === "assistant") {
        const info = streamInfo.get(row.streamId ?? "") ?? { status: "error" as const, content: "" };
        messages.push({
          id: row.id,
          role: "assistant",
          content: info.content,
          createdAt: row.createdAt ?? "",
          streamId: row.streamId,
          status: info.status,
          ...(info.error ? { error: info.error } : {}),
        });
      } else {
        messages.push({
          id: row.id,
          role: "user",
          content: row.content ?? "",
          createdAt: row.createdAt ?? "",
          status: "complete",
        });
      }
    }
    return messages;
  }

  /** What the provider sees: every message of the conversation up to and including the given user message. */
  async promptUpTo(conversationId: string, userMessageId: string): Promise<PromptMessage[]> {
    const history = await this.history(conversationId);
    const prompt: PromptMessage[] = [];
    for (const message of history) {
      if (message.role === "assistant" && message.status !== "complete") continue;
      prompt.push({ role: message.role, content: message.content });
      if (message.id === userMessageId) break;
    }
    return prompt;
  }

  async list(sessionId: string, limit = 100): Promise<ConversationSummary[]> {
    const ids = await this.redis.zrevrange(keys.sessionConversations(sessionId), 0, limit - 1);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hmget(keys.conversation(id), "title", "createdAt", "updatedAt");
    const rows = (await pipe.exec()) ?? [];
    const summaries: ConversationSummary[] = [];
    ids.forEach((id, index) => {
      const [title, createdAt, updatedAt] = (rows[index]?.[1] as (string | null)[] | undefined) ?? [];
      if (!title) return;
      summaries.push({ id, title, createdAt: createdAt ?? "", updatedAt: updatedAt ?? createdAt ?? "" });
    });
    return summaries;
  }
}
