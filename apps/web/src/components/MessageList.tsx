import { memo, useEffect, useLayoutEffect, useRef } from "react";
import type { StreamsState } from "../stream-reducer";
import type { ChatItem } from "../thread";
import { AssistantMessage, type MessageActions, UserMessage } from "./Message";

/** Within this many pixels of the bottom, the list follows the streaming answer; scrolled further up, it stays put. */
const STICK_PX = 48;

export const MessageList = memo(function MessageList({
  items,
  streams,
  conversationId,
  actions,
}: {
  items: ChatItem[];
  streams: StreamsState;
  conversationId: string;
  actions: MessageActions;
}) {
  const scroller = useRef<HTMLElement>(null);
  const content = useRef<HTMLOListElement>(null);
  const pinned = useRef(true);

  // Follow the bottom while pinned, whatever grows (text, code blocks, a late image).
  useEffect(() => {
    const box = scroller.current;
    const inner = content.current;
    if (!box || !inner) return;
    const onScroll = () => {
      pinned.current = box.scrollHeight - box.scrollTop - box.clientHeight < STICK_PX;
    };
    const observer = new ResizeObserver(() => {
      if (pinned.current) box.scrollTop = box.scrollHeight;
    });
    box.addEventListener("scroll", onScroll, { passive: true });
    observer.observe(inner);
    return () => {
      box.removeEventListener("scroll", onScroll);
      observer.disconnect();
    };
  }, []);

  // Another conversation opened: start at its end.
  // biome-ignore lint/correctness/useExhaustiveDependencies: only on conversation change
  useLayoutEffect(() => {
    const box = scroller.current;
    if (!box) return;
    pinned.current = true;
    box.scrollTop = box.scrollHeight;
  }, [conversationId]);

  let lastAssistant: string | undefined;
  for (const item of items) if (item.kind === "assistant") lastAssistant = item.id;
  return (
    <section className="message-scroller" ref={scroller} aria-label="Conversation">
      <ol
        className="messages"
        ref={content}
        aria-label="Messages"
        data-testid="messages"
        data-conversation-id={conversationId}
      >
        {items.map((item) => (
          <li key={item.id} className={`message-row ${item.kind}`}>
            {item.kind === "user" ? (
              <UserMessage item={item} conversationId={conversationId} actions={actions} />
            ) : (
              <AssistantMessage
                item={item}
                stream={item.streamId ? streams[item.streamId] : undefined}
                conversationId={conversationId}
                isLast={item.id === lastAssistant}
                actions={actions}
              />
            )}
          </li>
        ))}
      </ol>
    </section>
  );
});
