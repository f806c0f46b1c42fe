import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { ChatStore } from "../chat-store";
import { Composer, type Suggestion } from "./Composer";
import { ConnectionBadge } from "./ConnectionBadge";
import { ConversationList } from "./ConversationList";
import { EmptyState } from "./EmptyState";
import type { MessageActions } from "./Message";
import { MessageList } from "./MessageList";
import { NodePanel } from "./NodePanel";

const EMPTY: never[] = [];

export function App({ store }: { store: ChatStore }) {
  const state = useSyncExternalStore(store.subscribe, store.getState);
  const [drawerOpen, setDrawerOpen] = useState(false);
  const [suggestion, setSuggestion] = useState<Suggestion>();
  const { activeId, threads, streams, conversations, connection, ui, notice, cancelling } = state;
  const thread = activeId ? threads[activeId] : undefined;
  const items = thread?.items ?? EMPTY;

  // The stream Stop and Esc act on: the last open answer of the open conversation.
  const openStream = store.openStreamOf(activeId);
  const sending = items.some((i) => i.kind === "user" && i.send === "sending");

  const stop = useCallback(() => {
    if (openStream) void store.stop(openStream);
  }, [store, openStream]);

  // The drawer (phone width) takes the focus when it opens; dismissed (Esc, scrim), it gives it back to the menu.
  useEffect(() => {
    if (drawerOpen) document.querySelector<HTMLElement>("#sidebar .new-chat")?.focus();
  }, [drawerOpen]);
  const dismissDrawer = useCallback(() => {
    setDrawerOpen(false);
    document.querySelector<HTMLElement>(".menu-button")?.focus();
  }, []);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape") return;
      if (drawerOpen) {
        dismissDrawer();
        return;
      }
      if (openStream) {
        event.preventDefault();
        void store.stop(openStream);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [store, openStream, drawerOpen, dismissDrawer]);

  const actions = useMemo<MessageActions>(
    () => ({ onRetrySend: store.retrySend, onRegenerate: store.regenerate }),
    [store],
  );
  const open = useCallback(
    (id: string) => {
      store.open(id);
      setDrawerOpen(false);
      document.getElementById("composer-input")?.focus();
    },
    [store],
  );
  const newChat = () => {
    store.newChat();
    setDrawerOpen(false);
    document.getElementById("composer-input")?.focus();
  };
  const pick = useCallback((text: string) => setSuggestion((s) => ({ id: (s?.id ?? 0) + 1, text })), []);

  return (
    <div className={`app${ui.panelOpen ? " with-panel" : ""}${drawerOpen ? " drawer-open" : ""}`}>
      <button type="button" className="skip-link" onClick={() => document.getElementById("composer-input")?.focus()}>
        Skip to the message box
      </button>
      <header className="topbar">
        <button
          type="button"
          className="icon-button menu-button"
          aria-label="Conversations"
          aria-expanded={drawerOpen}
          aria-controls="sidebar"
          onClick={() => setDrawerOpen((o) => !o)}
        >
          <svg viewBox="0 0 20 20" width="20" height="20" aria-hidden="true">
            <path d="M3 5h14M3 10h14M3 15h14" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
          </svg>
        </button>
        <h1 className="brand">
          <svg viewBox="0 0 32 32" width="22" height="22" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="var(--accent)" />
            <g fill="#fff">
              <circle cx="10" cy="10" r="3" />
              <circle cx="22" cy="10" r="3" />
              <circle cx="10" cy="22" r="3" />
              <circle cx="22" cy="22" r="3" />
            </g>
          </svg>
          <span className="brand-name">chatgrid</span>
        </h1>
        <ConnectionBadge connection={connection} onReconnect={store.reconnectNow} />
        <button
          type="button"
          className="panel-toggle"
          aria-pressed={ui.panelOpen}
          aria-controls="node-panel"
          onClick={store.togglePanel}
          data-testid="panel-toggle"
        >
          Nodes
        </button>
      </header>

      <nav id="sidebar" className="sidebar" aria-label="Conversations">
        <button type="button" className="new-chat" onClick={newChat} data-testid="new-chat">
          <span aria-hidden="true">+</span> New chat
        </button>
        <ConversationList conversations={conversations} activeId={activeId} onOpen={open} />
      </nav>
      {drawerOpen && <div className="scrim" aria-hidden="true" onClick={dismissDrawer} />}

      <main className="chat" id="main">
        {notice && (
          <div className="notice" role="alert">
            <span>{notice.text}</span>
            <button type="button" className="link-button" onClick={() => store.dismissNotice()}>
              Dismiss
            </button>
          </div>
        )}
        {thread?.load === "loading" && items.length === 0 && (
          <p className="thread-state" role="status">
            Loading the conversation…
          </p>
        )}
        {thread?.load === "error" && (
          <p className="thread-state error" role="alert">
            Could not load this conversation: {thread.loadError}{" "}
            <button type="button" className="link-button" onClick={() => activeId && store.open(activeId)}>
              Try again
            </button>
          </p>
        )}
        {activeId && items.length > 0 ? (
          <MessageList items={items} streams={streams} conversationId={activeId} actions={actions} />
        ) : thread?.load === "loading" || thread?.load === "error" ? (
          <div className="message-scroller" />
        ) : (
          <EmptyState onPick={pick} />
        )}
        <Composer
          streaming={openStream !== undefined}
          busy={sending}
          stopping={openStream !== undefined && cancelling.has(openStream)}
          onSend={store.send}
          onStop={stop}
          suggestion={suggestion}
        />
      </main>

      {ui.panelOpen && (
        <NodePanel connection={connection} log={state.log} streams={streams} onClose={store.togglePanel} />
      )}
    </div>
  );
}
