import { memo, useState } from "react";
import type { StreamState } from "../stream-reducer";
import { type AssistantItem, answerView, type UserItem } from "../thread";
import { copyText, Markdown } from "./Markdown";

const STATUS_LABEL: Record<string, string> = {
  waiting: "Waiting for the AI node…",
  streaming: "Streaming…",
  complete: "Complete",
  cancelled: "Stopped",
  error: "Failed",
  interrupted: "Interrupted",
};

export interface MessageActions {
  onRetrySend: (conversationId: string, itemId: string) => void;
  onRegenerate: (conversationId: string, assistantId: string) => void;
}

export const UserMessage = memo(function UserMessage({
  item,
  conversationId,
  actions,
}: {
  item: UserItem;
  conversationId: string;
  actions: MessageActions;
}) {
  return (
    <article className="msg user" data-testid="user-message" data-send={item.send ?? "sent"} aria-label="You said">
      <div className="msg-body">{item.content}</div>
      {item.send === "sending" && <p className="msg-note">Sending…</p>}
      {item.send === "failed" && (
        <p className="msg-note msg-failed" role="alert">
          Not sent: {item.sendError}{" "}
          <button type="button" className="link-button" onClick={() => actions.onRetrySend(conversationId, item.id)}>
            Retry
          </button>
        </p>
      )}
    </article>
  );
});

/**
 * One answer. Memoized: a chunk of another stream, or typing in the composer, does not re-render it; a chunk of its
 * own stream re-renders only it (and of its Markdown, only the last block).
 */
export const AssistantMessage = memo(function AssistantMessage({
  item,
  stream,
  conversationId,
  isLast,
  actions,
}: {
  item: AssistantItem;
  stream: StreamState | undefined;
  conversationId: string;
  isLast: boolean;
  actions: MessageActions;
}) {
  const view = answerView(item, stream);
  const [copied, setCopied] = useState(false);
  const live = view.status === "waiting" || view.status === "streaming";
  const failed = view.status === "error" || view.status === "interrupted";
  const route = stream ? [stream.via.join(" → "), stream.aiNode].filter(Boolean).join(" · ") : "";
  const copy = async () => {
    await copyText(view.text);
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <article
      className={`msg assistant status-${view.status}`}
      data-testid="assistant-message"
      data-stream-id={item.streamId ?? ""}
      data-status={view.status}
      data-seq={stream?.lastSeq ?? ""}
      data-raw={view.text}
      data-via={stream?.via.join(",") ?? ""}
      data-ai-node={stream?.aiNode ?? ""}
      aria-label="Answer"
    >
      <div className="msg-body" aria-live="polite" aria-busy={live}>
        {view.text ? (
          <Markdown text={view.text} />
        ) : live ? (
          <>
            <span className="caret" aria-hidden="true" />
            <span className="sr-only">Waiting for the answer</span>
          </>
        ) : null}
      </div>
      {view.status === "interrupted" && (
        <p className="msg-banner warn" role="alert">
          This answer was interrupted and is incomplete{view.errorMessage ? `: ${view.errorMessage}` : "."}
        </p>
      )}
      {view.status === "error" && (
        <p className="msg-banner error" role="alert">
          The answer failed{view.errorMessage ? `: ${view.errorMessage}` : "."}
          {view.errorCode ? <span className="mono"> ({view.errorCode})</span> : null}
        </p>
      )}
      {stream?.finishReason === "length" && (
        <p className="msg-note" data-testid="finish-note">
          The answer reached its maximum length and stops here.
        </p>
      )}
      {stream?.finishReason === "timeout" && (
        <p className="msg-note" data-testid="finish-note">
          The answer reached its maximum time and stops here.
        </p>
      )}
      <footer className="msg-meta">
        <span className="status-chip" data-testid="message-status">
          {STATUS_LABEL[view.status]}
          {stream && stream.resets > 0 ? ` · restarted ×${stream.resets}` : ""}
        </span>
        <span className="route" title="Gateways that delivered this answer → … · AI node that produced it">
          {route ? (
            <>
              <span className="route-label">via </span>
              {route}
            </>
          ) : item.streamId && !live ? (
            "from history"
          ) : (
            "\u00a0"
          )}
        </span>
        <span className="msg-actions">
          {!live && view.text && (
            <button type="button" className="link-button" onClick={copy} aria-label="Copy answer">
              {copied ? "Copied" : "Copy"}
            </button>
          )}
          {failed && (
            <button
              type="button"
              className="link-button strong"
              data-testid="retry-button"
              onClick={() => actions.onRegenerate(conversationId, item.id)}
            >
              Retry
            </button>
          )}
          {!live && !failed && isLast && (
            <button
              type="button"
              className="link-button"
              data-testid="regenerate-button"
              onClick={() => actions.onRegenerate(conversationId, item.id)}
            >
              Regenerate
            </button>
          )}
        </span>
      </footer>
    </article>
  );
});
