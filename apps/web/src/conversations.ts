import type { ConversationSummary } from "@chatgrid/protocol";

/** Conversations not yet accepted by the server carry a local id with this prefix. */
export const DRAFT_PREFIX = "draft_";
export const TITLE_MAX_CHARS = 80;

export function isDraft(conversationId: string): boolean {
  return conversationId.startsWith(DRAFT_PREFIX);
}

/** The title the server derives (docs/protocol.md): the first line of the first message, at most 80 characters. */
export function deriveTitle(firstMessage: string): string {
  const line =
    firstMessage
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? "";
  const title = line.replace(/\s+/g, " ");
  if (title.length === 0) return "New chat";
  return title.length > TITLE_MAX_CHARS ? `${title.slice(0, TITLE_MAX_CHARS - 1)}…` : title;
}

/** Newest first (by last activity), ties by id so the order is stable. */
export function sortConversations(list: ConversationSummary[]): ConversationSummary[] {
  return [...list].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || a.id.localeCompare(b.id));
}

/** A conversation created this recently may be missing from a list the server read just before it existed. */
const RECENT_MS = 60_000;

/**
 * The server's list is the truth for the conversations it knows; local ones it does not list are kept only when
 * they are drafts being sent or were created a moment ago (anything else expired on the server); a local
 * `updatedAt` newer than the server's (a message sent since) wins, so the list does not jump back.
 */
export function mergeConversations(
  local: ConversationSummary[],
  server: ConversationSummary[],
  now = Date.now(),
): ConversationSummary[] {
  const byId = new Map(local.map((c) => [c.id, c]));
  const merged: ConversationSummary[] = server.map((s) => {
    const mine = byId.get(s.id);
    return mine && mine.updatedAt > s.updatedAt ? { ...s, updatedAt: mine.updatedAt } : s;
  });
  const serverIds = new Set(server.map((c) => c.id));
  for (const c of local) {
    if (serverIds.has(c.id)) continue;
    if (isDraft(c.id) || now - Date.parse(c.createdAt) < RECENT_MS) merged.push(c);
  }
  return sortConversations(merged);
}

/** Adds or updates one conversation (a message sent, a draft that got its server id). */
export function upsertConversation(
  list: ConversationSummary[],
  conversation: ConversationSummary,
  replacesId?: string,
): ConversationSummary[] {
  const rest = list.filter((c) => c.id !== conversation.id && c.id !== replacesId);
  return sortConversations([...rest, conversation]);
}
