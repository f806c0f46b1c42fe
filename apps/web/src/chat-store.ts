import type { ConversationSummary, ErrorFrame, StreamEvent, WelcomeFrame } from "@chatgrid/protocol";
import { Api, ApiError } from "./api";
import { type Endpoints, loadEndpoints } from "./config";
import { DRAFT_PREFIX, deriveTitle, isDraft, mergeConversations, upsertConversation } from "./conversations";
import { newId } from "./ids";
import { browserStorage, Persistence, type UiPrefs } from "./persistence";
import { ChatSocket, type ConnectionInfo, type LogEntry } from "./socket";
import {
  isOpen,
  newStream,
  resumePoints,
  type StreamAction,
  type StreamsState,
  streamsReducer,
} from "./stream-reducer";
import { type AssistantItem, type ChatItem, mergeHistory, promptOf, type Thread, type UserItem } from "./thread";

export interface Notice {
  id: number;
  text: string;
}

export interface AppState {
  connection: ConnectionInfo;
  streams: StreamsState;
  conversations: ConversationSummary[];
  /** The open conversation; null is a new chat. */
  activeId: string | null;
  threads: Readonly<Record<string, Thread>>;
  log: LogEntry[];
  notice?: Notice;
  ui: UiPrefs;
  /** Streams with a cancel request in flight. */
  cancelling: ReadonlySet<string>;
}

const LOG_LIMIT = 80;
const SAVE_STREAMS_MS = 250;
const FLUSH_FALLBACK_MS = 50;
/** A gap that the server does not close within this time means a broken socket: reconnect and resume. */
const GAP_WATCHDOG_MS = 3_000;
const TOKEN_WAIT_MS = 10_000;

function sendErrorText(error: unknown): string {
  if (error instanceof ApiError) {
    switch (error.code) {
      case "no_ai_node":
        return "No AI node is available right now.";
      case "rate_limited":
        return "Too many requests; wait a moment.";
      case "unavailable":
        return "The service is briefly unavailable.";
      case "network":
        return "The server could not be reached.";
      default:
        return error.message;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The page's state and everything that changes it: socket events (batched per frame), REST calls, persistence.
 * Components read it with useSyncExternalStore and call its methods; it holds no React.
 */
export class ChatStore {
  private state: AppState;
  private readonly listeners = new Set<() => void>();
  private readonly persistence: Persistence;
  private api: Api | undefined;
  private socket: ChatSocket | undefined;
  private token: string | undefined;
  private tokenWaiters: ((token: string) => void)[] = [];
  private queue: { event: StreamEvent; node: string }[] = [];
  private flushScheduled = false;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;
  private sendsInFlight = 0;
  /** Streams already looked up in their conversation's history (adopted once, never in a loop). */
  private readonly adopted = new Set<string>();
  private logId = 0;
  private noticeId = 0;
  private readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;

  constructor(persistence = new Persistence(browserStorage())) {
    this.persistence = persistence;
    this.token = persistence.loadToken();
    const streams: Record<string, ReturnType<typeof newStream>> = {};
    for (const s of persistence.loadOpenStreams()) streams[s.streamId] = s;
    const activeId = persistence.loadActive();
    this.state = {
      connection: { state: "connecting", attempt: 0 },
      streams,
      conversations: persistence.loadConversations(),
      activeId: activeId && !isDraft(activeId) ? activeId : null,
      threads: {},
      log: [],
      ui: persistence.loadUi(),
      cancelling: new Set(),
    };
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  // --- store plumbing ---------------------------------------------------------------------------------------

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getState = (): AppState => this.state;

  private set(patch: Partial<AppState>): void {
    const before = this.state;
    this.state = { ...before, ...patch };
    if (patch.conversations && patch.conversations !== before.conversations) {
      this.persistence.saveConversations(patch.conversations.filter((c) => !isDraft(c.id)));
    }
    if ("activeId" in patch && patch.activeId !== before.activeId) {
      this.persistence.saveActive(patch.activeId && !isDraft(patch.activeId) ? patch.activeId : null);
    }
    if (patch.ui && patch.ui !== before.ui) this.persistence.saveUi(patch.ui);
    if (patch.streams && patch.streams !== before.streams) this.scheduleSaveStreams();
    for (const listener of this.listeners) listener();
  }

  private dispatchStreams(action: StreamAction): void {
    const streams = streamsReducer(this.state.streams, action);
    if (streams !== this.state.streams) this.set({ streams });
  }

  private setThread(id: string, update: (thread: Thread | undefined) => Thread): void {
    this.set({ threads: { ...this.state.threads, [id]: update(this.state.threads[id]) } });
  }

  private log(level: LogEntry["level"], text: string): void {
    const entry: LogEntry = { id: ++this.logId, at: Date.now(), level, text };
    this.set({ log: [...this.state.log.slice(-(LOG_LIMIT - 1)), entry] });
  }

  notify(text: string): void {
    this.set({ notice: { id: ++this.noticeId, text } });
  }

  dismissNotice(): void {
    this.set({ notice: undefined });
  }

  private scheduleSaveStreams(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.saveStreams(), SAVE_STREAMS_MS);
  }

  /** Text and last seq of every open stream, from one state: the pair a reload resumes from. */
  readonly saveStreams = (): void => {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.persistence.saveOpenStreams(this.state.streams);
  };

  // --- start ------------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const endpoints: Endpoints = await loadEndpoints(fetch, window.location);
    this.api = new Api(endpoints.apiBase, () => this.token);
    this.socket = new ChatSocket(
      { url: endpoints.wsUrl },
      {
        token: () => this.token,
        resumePoints: () => resumePoints(this.state.streams),
        onWelcome: (frame, info) => this.onWelcome(frame, info),
        onStreamEvent: (event, node) => this.enqueue(event, node),
        onErrorFrame: (frame) => this.onErrorFrame(frame),
        onConnection: (connection) => this.set({ connection }),
        onLog: (level, text) => this.log(level, text),
        onUnauthorized: () => this.onUnauthorized(),
      },
    );
    window.addEventListener("pagehide", this.saveStreams);
    this.markReady();
    this.log("info", `API ${endpoints.apiBase || "same origin"}, socket ${endpoints.wsUrl}`);
    this.socket.start();
    if (this.state.activeId && this.token) void this.loadThread(this.state.activeId);
  }

  dispose(): void {
    this.saveStreams();
    window.removeEventListener("pagehide", this.saveStreams);
    this.socket?.stop();
  }

  private whenToken(): Promise<string> {
    if (this.token) return Promise.resolve(this.token);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ApiError(0, "network", "not connected yet: no session")),
        TOKEN_WAIT_MS,
      );
      this.tokenWaiters.push((token) => {
        clearTimeout(timer);
        resolve(token);
      });
    });
  }

  // --- socket -----------------------------------------------------------------------------------------------

  private onWelcome(frame: WelcomeFrame, info: { reconnect: boolean; resumed: number }): void {
    if (frame.token !== this.token) {
      this.token = frame.token;
      this.persistence.saveToken(frame.token);
    }
    for (const waiter of this.tokenWaiters.splice(0)) waiter(frame.token);
    void this.refreshConversations();
    const active = this.state.activeId;
    if (active && !isDraft(active)) {
      const thread = this.state.threads[active];
      if (!thread || thread.load === "error" || thread.load === "idle") void this.loadThread(active);
    }
    if (info.reconnect && info.resumed > 0)
      this.log("ok", `${info.resumed} unfinished answer(s) continue on ${frame.node}`);
  }

  private onUnauthorized(): void {
    this.token = undefined;
    this.persistence.clearSession();
    this.dispatchStreams({ type: "clear" });
    this.set({ conversations: [], threads: {}, activeId: null, cancelling: new Set() });
    this.notify("Your session expired or is unknown to the server; a new one was started.");
  }

  private onErrorFrame(frame: ErrorFrame): void {
    this.log("warn", `error frame: ${frame.code}${frame.streamId ? ` (${frame.streamId})` : ""}: ${frame.message}`);
    if (!frame.streamId) return;
    const streamId = frame.streamId;
    if (frame.code === "stream_unknown") {
      this.flush();
      this.dispatchStreams({
        type: "interrupt",
        streamId,
        error: { code: "stream_unknown", message: "The server no longer knows this answer; it cannot be resumed." },
      });
    } else if (frame.code === "unavailable") {
      // The gateway could not read the stream's history now: ask again shortly.
      setTimeout(() => {
        const stream = this.state.streams[streamId];
        if (stream && isOpen(stream)) {
          this.socket?.resume([stream.lastSeq >= 0 ? { streamId, afterSeq: stream.lastSeq } : { streamId }]);
        }
      }, 1_000);
    }
  }

  /** Socket events are applied in batches, once per frame: a fast stream costs one render per frame, not per chunk. */
  private enqueue(event: StreamEvent, node: string): void {
    this.queue.push({ event, node });
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      this.flush();
    };
    globalThis.requestAnimationFrame?.(run);
    // rAF does not run in background tabs; the timeout does (throttled), so state and persistence keep up.
    setTimeout(run, FLUSH_FALLBACK_MS);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0);
    let streams = this.state.streams;
    let start = 0;
    for (let i = 1; i <= batch.length; i++) {
      if (i === batch.length || batch[i]!.node !== batch[start]!.node) {
        streams = streamsReducer(streams, {
          type: "events",
          node: batch[start]!.node,
          events: batch.slice(start, i).map((b) => b.event),
        });
        start = i;
      }
    }
    if (streams === this.state.streams) return;
    const before = this.state.streams;
    this.set({ streams });
    for (const { event } of batch) {
      if (event.type === "start" && before[event.streamId]?.aiNode === undefined && streams[event.streamId]?.aiNode) {
        this.log("info", `answer started on ${event.aiNode}`);
      }
      if (event.type === "reset") this.log("warn", `answer restarted on another AI node (reset at seq ${event.seq})`);
      if (event.type === "snapshot") this.log("info", `snapshot up to seq ${event.seq} (history expired)`);
    }
    this.finishCancels();
    this.adoptForeignStreams();
    this.watchGaps();
  }

  private finishCancels(): void {
    if (this.state.cancelling.size === 0) return;
    const still = new Set(
      [...this.state.cancelling].filter((id) => {
        const s = this.state.streams[id];
        return s && isOpen(s);
      }),
    );
    if (still.size !== this.state.cancelling.size) this.set({ cancelling: still });
  }

  /** Streams this page did not start (another tab of the session): show them by reloading their conversation. */
  private adoptForeignStreams(): void {
    if (this.sendsInFlight > 0) return;
    const known = new Set<string>();
    for (const thread of Object.values(this.state.threads)) {
      for (const item of thread.items) if (item.kind === "assistant" && item.streamId) known.add(item.streamId);
    }
    const reload = new Set<string>();
    for (const stream of Object.values(this.state.streams)) {
      if (!stream.conversationId || known.has(stream.streamId) || this.adopted.has(stream.streamId)) continue;
      if (this.state.threads[stream.conversationId]?.load !== "loaded") continue;
      this.adopted.add(stream.streamId);
      reload.add(stream.conversationId);
    }
    for (const id of reload) void this.loadThread(id, true);
    if (reload.size > 0) void this.refreshConversations();
  }

  private watchGaps(): void {
    const gapped = Object.values(this.state.streams).some((s) => s.held.length > 0);
    if (!gapped) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
      return;
    }
    this.gapTimer ??= setTimeout(() => {
      this.gapTimer = undefined;
      if (Object.values(this.state.streams).some((s) => s.held.length > 0)) {
        this.socket?.reconnectNow("a gap in a stream did not close");
      }
    }, GAP_WATCHDOG_MS);
  }

  // --- REST -------------------------------------------------------------------------------------------------

  async refreshConversations(): Promise<void> {
    await this.ready;
    try {
      const { conversations } = await this.api!.conversations();
      this.set({ conversations: mergeConversations(this.state.conversations, conversations) });
    } catch (error) {
      this.log("warn", `conversations: ${sendErrorText(error)}`);
    }
  }

  async loadThread(conversationId: string, quiet = false): Promise<void> {
    await this.ready;
    if (isDraft(conversationId)) return;
    if (!quiet) this.setThread(conversationId, (t) => ({ id: conversationId, items: t?.items ?? [], load: "loading" }));
    try {
      await this.whenToken();
      const history = await this.api!.history(conversationId);
      this.setThread(conversationId, (t) => mergeHistory(t, history.messages, conversationId));
      // Answers still streaming that this page does not follow (a reload without saved state, another tab):
      // follow them from their beginning.
      const fresh = history.messages.filter(
        (m) => m.role === "assistant" && m.status === "streaming" && m.streamId && !this.state.streams[m.streamId],
      );
      if (fresh.length > 0) {
        this.dispatchStreams({
          type: "restore",
          streams: fresh.map((m) => newStream(m.streamId!, { status: "streaming", conversationId, messageId: m.id })),
        });
        this.socket?.resume(fresh.map((m) => ({ streamId: m.streamId! })));
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        // Gone (expired, or another session's): forget it.
        this.set({
          conversations: this.state.conversations.filter((c) => c.id !== conversationId),
          activeId: this.state.activeId === conversationId ? null : this.state.activeId,
        });
        this.notify("That conversation no longer exists on the server.");
        return;
      }
      this.setThread(conversationId, (t) => ({
        id: conversationId,
        items: t?.items ?? [],
        load: "error",
        loadError: sendErrorText(error),
      }));
    }
  }

  // --- user actions -----------------------------------------------------------------------------------------

  readonly newChat = (): void => {
    this.set({ activeId: null });
  };

  readonly open = (conversationId: string): void => {
    this.set({ activeId: conversationId });
    const thread = this.state.threads[conversationId];
    if (!thread || thread.load === "error" || thread.load === "idle") void this.loadThread(conversationId);
  };

  readonly togglePanel = (): void => {
    this.set({ ui: { ...this.state.ui, panelOpen: !this.state.ui.panelOpen } });
  };

  readonly send = (text: string): void => {
    const message = text.trim();
    if (!message) return;
    const now = new Date().toISOString();
    let conversationId = this.state.activeId;
    if (!conversationId) {
      conversationId = DRAFT_PREFIX + newId();
      this.set({
        activeId: conversationId,
        conversations: upsertConversation(this.state.conversations, {
          id: conversationId,
          title: deriveTitle(message),
          createdAt: now,
          updatedAt: now,
        }),
      });
      this.setThread(conversationId, () => ({ id: conversationId!, items: [], load: "loaded" }));
    }
    const item: UserItem = {
      kind: "user",
      id: newId("local_"),
      content: message,
      createdAt: now,
      clientMessageId: newId(),
      send: "sending",
      local: true,
    };
    this.setThread(conversationId, (t) => ({
      id: conversationId!,
      items: [...(t?.items ?? []), item],
      load: t?.load ?? "loaded",
    }));
    void this.post(conversationId, item);
  };

  /** POST /api/chat for a user item; a retry of a failed item reuses its clientMessageId (idempotent). */
  private async post(conversationId: string, item: UserItem): Promise<void> {
    this.sendsInFlight++;
    let currentId = conversationId;
    try {
      await this.ready;
      await this.whenToken();
      const accepted = await this.api!.chat({
        message: item.content,
        ...(isDraft(conversationId) ? {} : { conversationId }),
        clientMessageId: item.clientMessageId,
      });
      currentId = this.state.threads[conversationId] ? conversationId : accepted.conversationId;
      const assistant: AssistantItem = {
        kind: "assistant",
        id: accepted.messageId,
        streamId: accepted.streamId,
        content: "",
        status: "streaming",
        createdAt: new Date().toISOString(),
        local: true,
      };
      this.dispatchStreams({ type: "register", ...accepted });
      const items = (this.state.threads[currentId]?.items ?? []).flatMap((i): ChatItem[] =>
        i.id === item.id ? [{ ...item, send: undefined, sendError: undefined }, assistant] : [i],
      );
      const now = new Date().toISOString();
      const summary = this.state.conversations.find((c) => c.id === currentId);
      if (isDraft(currentId)) {
        // The draft becomes the server's conversation.
        const { [currentId]: _draft, ...threads } = this.state.threads;
        this.set({
          threads: { ...threads, [accepted.conversationId]: { id: accepted.conversationId, items, load: "loaded" } },
          conversations: upsertConversation(
            this.state.conversations,
            {
              id: accepted.conversationId,
              title: summary?.title ?? deriveTitle(item.content),
              createdAt: summary?.createdAt ?? now,
              updatedAt: now,
            },
            currentId,
          ),
          activeId: this.state.activeId === currentId ? accepted.conversationId : this.state.activeId,
        });
      } else {
        this.setThread(currentId, (t) => ({ ...(t ?? { id: currentId, load: "loaded" }), items }));
        if (summary)
          this.set({ conversations: upsertConversation(this.state.conversations, { ...summary, updatedAt: now }) });
      }
      // The open socket delivers the stream from its start; a closed one names it in the next hello.
      void this.refreshConversations();
    } catch (error) {
      this.setThread(currentId, (t) => ({
        ...(t ?? { id: currentId, load: "loaded" }),
        items: (t?.items ?? []).map((i) =>
          i.id === item.id ? { ...item, send: "failed" as const, sendError: sendErrorText(error) } : i,
        ),
      }));
    } finally {
      this.sendsInFlight--;
    }
  }

  readonly retrySend = (conversationId: string, itemId: string): void => {
    const item = this.state.threads[conversationId]?.items.find((i) => i.id === itemId);
    if (item?.kind !== "user" || item.send !== "failed") return;
    const sending: UserItem = { ...item, send: "sending", sendError: undefined };
    this.setThread(conversationId, (t) => ({
      ...(t ?? { id: conversationId, load: "loaded" }),
      items: (t?.items ?? []).map((i) => (i.id === itemId ? sending : i)),
    }));
    void this.post(conversationId, sending);
  };

  /** Regenerate / retry: the prompt of that answer is sent again as a new turn of the same conversation. */
  readonly regenerate = (conversationId: string, assistantId: string): void => {
    const prompt = promptOf(this.state.threads[conversationId]?.items ?? [], assistantId);
    if (!prompt) return;
    if (this.state.activeId !== conversationId) this.set({ activeId: conversationId });
    this.send(prompt);
  };

  /** Stop: POST /api/cancel; the stream then ends with `done` cancelled, which sets the state. */
  readonly stop = async (streamId: string): Promise<void> => {
    const stream = this.state.streams[streamId];
    if (!stream || !isOpen(stream) || this.state.cancelling.has(streamId)) return;
    this.set({ cancelling: new Set([...this.state.cancelling, streamId]) });
    try {
      await this.ready;
      const result = await this.api!.cancel(streamId);
      this.log("info", result.cancelled ? "stop requested" : "the answer had already ended");
    } catch (error) {
      const cancelling = new Set(this.state.cancelling);
      cancelling.delete(streamId);
      this.set({ cancelling });
      this.notify(`Could not stop the answer: ${sendErrorText(error)}`);
    }
  };

  /** The open stream of a conversation, if any (what Stop and Esc act on). */
  openStreamOf(conversationId: string | null): string | undefined {
    if (!conversationId) return undefined;
    const items = this.state.threads[conversationId]?.items ?? [];
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (item?.kind !== "assistant" || !item.streamId) continue;
      const stream = this.state.streams[item.streamId];
      if (stream ? isOpen(stream) : item.status === "streaming") return item.streamId;
    }
    return undefined;
  }

  readonly reconnectNow = (): void => {
    this.socket?.reconnectNow("asked by the user");
  };
}
