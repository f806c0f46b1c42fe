import type { HistoryMessage, MessageStatus } from "@chatgrid/protocol";
import type { StreamState, StreamStatus } from "./stream-reducer";

/** One conversation's messages as the page shows them: history from the server plus what is being sent. */
export interface UserItem {
  kind: "user";
  id: string;
  content: string;
  createdAt: string;
  clientMessageId?: string;
  /** Only while POST /api/chat has not been accepted: `sending`, or `failed` with the reason. */
  send?: "sending" | "failed";
  sendError?: string;
  /** Made by this page (not read from history). */
  local?: true;
}

export interface AssistantItem {
  kind: "assistant";
  id: string;
  streamId?: string;
  /** As history returned it; the live stream state (when the page has one) is newer. */
  content: string;
  status: MessageStatus;
  createdAt: string;
  /** Why it failed, as history tells. */
  error?: { code: string; message: string };
  /** Made by this page from a 202 (not read from history). */
  local?: true;
}

export type ChatItem = UserItem | AssistantItem;

export interface Thread {
  id: string;
  items: ChatItem[];
  load: "idle" | "loading" | "loaded" | "error";
  loadError?: string;
}

export function itemsFromHistory(messages: HistoryMessage[]): ChatItem[] {
  return messages.map(
    (m): ChatItem =>
      m.role === "user"
        ? { kind: "user", id: m.id, content: m.content, createdAt: m.createdAt }
        : {
            kind: "assistant",
            id: m.id,
            streamId: m.streamId,
            content: m.content,
            status: m.status,
            createdAt: m.createdAt,
            ...(m.error ? { error: m.error } : {}),
          },
  );
}

/**
 * Replaces a thread's items by history, keeping what this page has and the server's answer did not include yet:
 * messages still being sent (or that failed), and turns accepted after the history was read (a send racing the
 * load), each with its question.
 */
export function mergeHistory(thread: Thread | undefined, messages: HistoryMessage[], id: string): Thread {
  const known = new Set(messages.map((m) => m.streamId).filter(Boolean));
  const local = thread?.items ?? [];
  const kept: ChatItem[] = [];
  local.forEach((item, index) => {
    if (item.kind === "user" && item.send !== undefined) kept.push(item);
    if (item.kind === "assistant" && item.local && item.streamId && !known.has(item.streamId)) {
      const question = local[index - 1];
      if (question?.kind === "user" && question.local && !kept.includes(question)) kept.push(question);
      kept.push(item);
    }
  });
  return { id, items: [...itemsFromHistory(messages), ...kept], load: "loaded" };
}

/** What an assistant message shows: the live stream when the page follows it, else what history said. */
export interface AnswerView {
  text: string;
  status: StreamStatus;
  errorMessage?: string;
  errorCode?: string;
}

const HISTORY_STATUS: Record<MessageStatus, StreamStatus> = {
  complete: "complete",
  streaming: "streaming",
  cancelled: "cancelled",
  error: "error",
};

export function answerView(item: AssistantItem, stream: StreamState | undefined): AnswerView {
  if (!stream) {
    return {
      text: item.content,
      status: HISTORY_STATUS[item.status],
      errorMessage: item.error?.message,
      errorCode: item.error?.code,
    };
  }
  // A stream restored from history before its replay arrives has no text yet: show what history had.
  const text = stream.lastSeq < 0 && stream.text === "" ? item.content : stream.text;
  return { text, status: stream.status, errorMessage: stream.error?.message, errorCode: stream.error?.code };
}

/** The prompt an answer replied to: the closest user message before it. */
export function promptOf(items: ChatItem[], assistantId: string): string | undefined {
  const index = items.findIndex((i) => i.id === assistantId);
  for (let i = index - 1; i >= 0; i--) {
    const item = items[i];
    if (item?.kind === "user") return item.content;
  }
  return undefined;
}
