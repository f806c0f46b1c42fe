import type { ConversationSummary } from "@chatgrid/protocol";
import { memo } from "react";
import { isDraft } from "../conversations";

function when(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** The session's conversations, newest first; the open one is marked with aria-current. */
export const ConversationList = memo(function ConversationList({
  conversations,
  activeId,
  onOpen,
}: {
  conversations: ConversationSummary[];
  activeId: string | null;
  onOpen: (id: string) => void;
}) {
  if (conversations.length === 0) {
    return <p className="conversations-empty">No conversations yet.</p>;
  }
  return (
    <ul className="conversations" data-testid="conversation-list">
      {conversations.map((c) => (
        <li key={c.id}>
          <button
            type="button"
            className="conversation"
            aria-current={c.id === activeId ? "page" : undefined}
            data-conversation-id={c.id}
            onClick={() => onOpen(c.id)}
            disabled={isDraft(c.id) && c.id !== activeId}
          >
            <span className="conversation-title">{c.title}</span>
            <span className="conversation-time">
              <time dateTime={c.updatedAt}>{when(c.updatedAt)}</time>
            </span>
          </button>
        </li>
      ))}
    </ul>
  );
});
