import {
  type ConversationSummary,
  HISTORY_CURSOR_PATTERN,
  type HistoryMessage,
  type MessageStatus,
  type StreamError,
} from "@chatgrid/protocol";
import type { Redis } from "ioredis";
import { newId } from "./ids";
import { keys } from "./keys";
import { LuaScript } from "./redis";
import type { SlotKeys } from "./stream-slots";
import type { StreamStore } from "./stream-store";

/** One Redis command: its name, then its arguments. */
export type RedisCommand = [string, ...(string | number)[]];

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

/** How much of a conversation the provider is given (the AI node's CONTEXT_MAX_CHARS / CONTEXT_MAX_MESSAGES). */
export interface PromptBudget {
  /** Total characters of the messages kept; the newest turns that fit are kept, the user message always. */
  maxChars: number;
  /** List entries read at most, the user message included (skipped answers count too). */
  maxMessages: number;
}

/** For callers that pass no budget: the AI node's defaults (docs/configuration.md). */
export const DEFAULT_PROMPT_BUDGET: PromptBudget = { maxChars: 48_000, maxMessages: 40 };

/** One page of a conversation, oldest first; `nextCursor` (opaque) asks for the page before it. */
export interface HistoryPage {
  messages: HistoryMessage[];
  nextCursor?: string;
}

/*
 * History cursors (docs/protocol.md "History pages"): the list index of the oldest message of the page just
 * read, so the next page is the `limit` entries before it. The list only grows at its end (a rolled-back turn
 * removes its own two entries, the newest), so an index stays on the same message while newer turns are added.
 * Opaque to clients: base64url of `h1:<index>`, the version letting the format change later.
 */
const CURSOR = /^h1:(0|[1-9][0-9]{0,9})$/;

export function encodeHistoryCursor(index: number): string {
  return Buffer.from(`h1:${index}`, "latin1").toString("base64url");
}

/** The index a cursor stands for, or undefined when it is not one this store issued (canonical form only). */
export function decodeHistoryCursor(cursor: string): number | undefined {
  if (!HISTORY_CURSOR_PATTERN.test(cursor)) return undefined;
  const match = CURSOR.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  if (!match) return undefined;
  const index = Number(match[1]);
  return encodeHistoryCursor(index) === cursor ? index : undefined;
}

/**
 * One page of the message list in one call: the `limit` ids before index `before` (-1: the newest page), with the
 * index of the first one. `before` past the end (a rolled-back turn shrank the list) reads from the end.
 */
const HISTORY_PAGE_SCRIPT = new LuaScript(`
local len = redis.call('LLEN', KEYS[1])
local before = tonumber(ARGV[1])
if before < 0 or before > len then before = len end
if before == 0 then return {0, {}} end
local start = before - tonumber(ARGV[2])
if start < 0 then start = 0 end
return {start, redis.call('LRANGE', KEYS[1], start, before - 1)}
`);

/** List entries searched for the user message, newest first: it is normally the second newest. */
const PROMPT_SEARCH_ENTRIES = 10_000;

/** The last `ARGV[2]` ids up to and including the user message `ARGV[1]`; false when it is not in the list. */
const PROMPT_WINDOW_SCRIPT = new LuaScript(`
local pos = redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1, 'MAXLEN', tonumber(ARGV[3]))
if not pos then return false end
local start = pos - tonumber(ARGV[2]) + 1
if start < 0 then start = 0 end
return redis.call('LRANGE', KEYS[1], start, pos)
`);

const TITLE_MAX = 80;

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === "string");

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
    const { turn, commands } = this.turnCommands(sessionId, message, conversationId, stream);
    const tx = this.redis.multi();
    for (const [command, ...args] of commands) tx.call(command, ...args);
    await tx.exec();
    return turn;
  }

  /**
   * The turn `beginTurn` writes, and its commands, without running them: for a caller that runs them in a script
   * of its own, after its checks (StreamSlots.admit), in one Redis call.
   */
  turnCommands(
    sessionId: string,
    message: string,
    conversationId?: string,
    stream: { streamId?: string; slots?: SlotKeys } = {},
  ): { turn: Turn; commands: RedisCommand[] } {
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
    const commands: RedisCommand[] = [];
    if (turn.newConversation) {
      commands.push([
        "hset",
        conv,
        "id",
        turn.conversationId,
        "sessionId",
        sessionId,
        "title",
        titleFrom(message),
        "createdAt",
        createdAt,
      ]);
    }
    commands.push(
      ["hset", conv, "updatedAt", createdAt],
      ["rpush", msgs, turn.userMessageId, turn.assistantMessageId],
      [
        "hset",
        keys.message(turn.userMessageId),
        "id",
        turn.userMessageId,
        "role",
        "user",
        "content",
        message,
        "createdAt",
        createdAt,
      ],
      [
        "hset",
        keys.message(turn.assistantMessageId),
        "id",
        turn.assistantMessageId,
        "role",
        "assistant",
        "createdAt",
        createdAt,
        "streamId",
        turn.streamId,
      ],
      ["zadd", keys.sessionConversations(sessionId), now, turn.conversationId],
    );
    for (const key of [
      conv,
      msgs,
      keys.message(turn.userMessageId),
      keys.message(turn.assistantMessageId),
      keys.sessionConversations(sessionId),
    ]) {
      commands.push(["pexpire", key, this.ttl]);
    }
    commands.push(
      ...this.streams.createCommands(
        {
          streamId: turn.streamId,
          sessionId,
          conversationId: turn.conversationId,
          messageId: turn.assistantMessageId,
          userMessageId: turn.userMessageId,
          ...(stream.slots ? { slots: stream.slots } : {}),
        },
        now,
      ),
    );
    return { turn, commands };
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

  /** Every message of a conversation in order. Unbounded: for tests and tools; the API reads pages (historyPage). */
  async history(conversationId: string): Promise<HistoryMessage[]> {
    return this.messagesOf(await this.redis.lrange(keys.conversationMessages(conversationId), 0, -1));
  }

  /**
   * The newest `limit` messages before the cursor's position (without a cursor: the newest), oldest first, and a
   * cursor for the page before when older messages exist. Bounded: one script call reads the page's ids only,
   * then the per-message reads of that page.
   */
  async historyPage(conversationId: string, options: { limit: number; before?: number }): Promise<HistoryPage> {
    const limit = Math.max(1, Math.floor(options.limit));
    const before = options.before === undefined ? -1 : Math.max(0, Math.floor(options.before));
    const reply = await HISTORY_PAGE_SCRIPT.run<unknown>(
      this.redis,
      [keys.conversationMessages(conversationId)],
      [before, limit],
    );
    if (!Array.isArray(reply) || typeof reply[0] !== "number" || !isStringArray(reply[1])) {
      throw new Error("history page script returned an unexpected reply");
    }
    const [first, ids] = reply as [number, string[]];
    const messages = await this.messagesOf(ids);
    return first > 0 ? { messages, nextCursor: encodeHistoryCursor(first) } : { messages };
  }

  /**
   * The messages of these ids, in this order (ids whose message is gone are left out); rows already read (`known`,
   * by id) are not read again.
   */
  private async messagesOf(
    ids: string[],
    known: ReadonlyMap<string, Record<string, string>> = new Map(),
  ): Promise<HistoryMessage[]> {
    if (ids.length === 0) return [];
    const missing = ids.filter((id) => !known.has(id));
    const read = new Map<string, Record<string, string>>();
    if (missing.length > 0) {
      const pipe = this.redis.pipeline();
      for (const id of missing) pipe.hgetall(keys.message(id));
      const replies = (await pipe.exec()) ?? [];
      missing.forEach((id, index) => {
        const [error, row] = replies[index] ?? [new Error("no reply")];
        if (error) throw error;
        read.set(id, (row as Record<string, string> | null) ?? {});
      });
    }
    const rows = ids.map((id) => known.get(id) ?? read.get(id) ?? {});
    const assistant = rows.filter((row) => row.role === "assistant" && row.streamId);
    const streamInfo = new Map<string, { status: MessageStatus; content: string; error?: StreamError }>();
    if (assistant.length > 0) {
      // Each read is one script call; sent together, they go to Redis back to back on the one connection.
      const texts = await Promise.all(assistant.map((row) => this.streams.text(row.streamId as string)));
      assistant.forEach((row, index) => {
        const read = texts[index];
        const messageStatus = statusOf(read?.status ?? null, read?.finishReason ?? null);
        const error = messageStatus === "error" ? errorOf(read?.doneFrame ?? null) : undefined;
        const content = read?.content ?? "";
        streamInfo.set(row.streamId as string, { status: messageStatus, content, ...(error ? { error } : {}) });
      });
    }
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

  /**
   * What the provider sees: the conversation up to and including the given user message, within the budget. It
   * reads at most `maxMessages` entries ending at the user message, leaves out answers that did not complete, and
   * keeps the newest whole turns (a question and its answers) that fit `maxChars` beside the user message; the
   * oldest go first. The user message itself is always there, whatever its length.
   */
  async promptUpTo(
    conversationId: string,
    userMessageId: string,
    budget: PromptBudget = DEFAULT_PROMPT_BUDGET,
  ): Promise<PromptMessage[]> {
    const maxMessages = Math.max(1, Math.floor(budget.maxMessages));
    // The user message is read beside the window, in the same round trip: the first turn of a conversation (its
    // window is that message alone) then needs no other read before the first token (docs/benchmarks.md).
    const [reply, userRow] = await Promise.all([
      PROMPT_WINDOW_SCRIPT.run<unknown>(
        this.redis,
        [keys.conversationMessages(conversationId)],
        [userMessageId, maxMessages, PROMPT_SEARCH_ENTRIES],
      ),
      this.redis.hgetall(keys.message(userMessageId)),
    ]);
    if (reply !== null && !isStringArray(reply)) throw new Error("prompt window script returned an unexpected reply");
    const window = reply;
    // Not in the list (not found within the searched entries): the user message alone.
    const messages = await this.messagesOf(
      window && window.length > 0 ? window : [userMessageId],
      new Map([[userMessageId, userRow]]),
    );
    const user = messages.pop();
    if (!user || user.id !== userMessageId) return [];
    const turns: PromptMessage[][] = [];
    let turn: PromptMessage[] | undefined;
    for (const message of messages) {
      if (message.role === "user") {
        turn = [{ role: "user", content: message.content }];
        turns.push(turn);
      } else if (message.status === "complete" && turn) {
        // An answer whose question is outside the window (no `turn` yet) is left out with it.
        turn.push({ role: "assistant", content: message.content });
      }
    }
    let chars = user.content.length;
    let first = turns.length;
    while (first > 0) {
      const size = turns[first - 1]!.reduce((sum, m) => sum + m.content.length, 0);
      if (chars + size > budget.maxChars) break;
      chars += size;
      first--;
    }
    return [...turns.slice(first).flat(), { role: "user", content: user.content }];
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
