import type { FinishReason, StreamError, StreamEvent, Usage } from "@chatgrid/protocol";

/**
 * The client's view of assistant streams, built only from seq-numbered events (docs/protocol.md §3). Pure: the same
 * events in give the same state out, whatever socket, gateway or page load they came through.
 *
 * - An event whose seq is not above the last applied one is ignored (duplicates after a resume, a second socket).
 * - An event ahead of the next expected seq is held until the gap closes (defence in depth: the server never sends a
 *   gap on one socket, but a client must not glue text together in the wrong order); a `snapshot` closes any gap.
 * - `reset` voids the text so far; `snapshot` replaces it; `done` ends the stream and fixes its status.
 */

/**
 * `waiting`: accepted by the server, nothing received yet. `interrupted`: the answer was cut off before the model
 * finished (AI node lost, provider cut, or the stream is unknown after a resume): it is never shown as complete.
 */
export type StreamStatus = "waiting" | "streaming" | "complete" | "cancelled" | "error" | "interrupted";

export interface StreamState {
  streamId: string;
  conversationId?: string;
  messageId?: string;
  /** The last seq applied; -1 before anything. */
  lastSeq: number;
  /** The answer's raw (Markdown) text since the last reset. */
  text: string;
  status: StreamStatus;
  finishReason?: FinishReason;
  error?: StreamError;
  usage?: Usage;
  /** The AI node named by `start`. */
  aiNode?: string;
  /** Gateways that delivered this stream's events, in order (a failover appends the new one). */
  via: string[];
  resets: number;
  snapshots: number;
  /** Events that arrived ahead of a gap, waiting for it to close. */
  held: StreamEvent[];
}

export type StreamsState = Readonly<Record<string, StreamState>>;

/** Error codes of `done` that mean "cut off before the end", as opposed to a failure the provider reported. */
const INTERRUPTION_CODES = new Set(["provider_incomplete", "provider_timeout", "stream_failed"]);
/** A server that keeps sending past a gap is broken; beyond this the client stops holding and resyncs. */
export const MAX_HELD_EVENTS = 2_000;

export const FINAL_STATUSES: ReadonlySet<StreamStatus> = new Set(["complete", "cancelled", "error", "interrupted"]);

export function isFinal(stream: Pick<StreamState, "status">): boolean {
  return FINAL_STATUSES.has(stream.status);
}

/** Streams that still expect events: the ones to name in `hello.resume` and to keep across a reload. */
export function isOpen(stream: Pick<StreamState, "status">): boolean {
  return stream.status === "waiting" || stream.status === "streaming";
}

export function newStream(streamId: string, init: Partial<StreamState> = {}): StreamState {
  return { streamId, lastSeq: -1, text: "", status: "waiting", via: [], resets: 0, snapshots: 0, held: [], ...init };
}

export function statusOfDone(finishReason: FinishReason, error?: StreamError): StreamStatus {
  switch (finishReason) {
    case "stop":
    case "length":
    case "timeout":
      return "complete";
    case "cancelled":
      return "cancelled";
    case "error":
      return error && INTERRUPTION_CODES.has(error.code) ? "interrupted" : "error";
  }
}

function withVia(via: string[], node: string | undefined): string[] {
  return node && via[via.length - 1] !== node ? [...via, node] : via;
}

/** Applies one event that is exactly the next seq (or a snapshot beyond the last). */
function apply(stream: StreamState, event: StreamEvent): StreamState {
  switch (event.type) {
    case "start":
      return {
        ...stream,
        lastSeq: 0,
        text: "",
        status: "streaming",
        conversationId: event.conversationId,
        messageId: event.messageId,
        aiNode: event.aiNode,
      };
    case "chunk":
      return { ...stream, lastSeq: event.seq, text: stream.text + event.delta, status: "streaming" };
    case "reset":
      return {
        ...stream,
        lastSeq: event.seq,
        text: "",
        status: "streaming",
        resets: stream.resets + 1,
        aiNode: event.aiNode ?? stream.aiNode,
      };
    case "snapshot":
      return {
        ...stream,
        lastSeq: event.seq,
        text: event.content,
        status: "streaming",
        snapshots: stream.snapshots + 1,
      };
    case "done":
      return {
        ...stream,
        lastSeq: event.seq,
        status: statusOfDone(event.finishReason, event.error),
        finishReason: event.finishReason,
        error: event.error,
        usage: event.usage,
        // After a takeover the node that finished is not the one in `start`.
        aiNode: event.aiNode ?? stream.aiNode,
      };
  }
}

/** Applies held events that have become contiguous; drops the ones the new position made stale. */
function drain(stream: StreamState): StreamState {
  let current = stream;
  for (;;) {
    const held = current.held.filter((e) => e.seq > current.lastSeq);
    const next = held.find((e) => e.seq === current.lastSeq + 1 || (e.type === "snapshot" && e.seq > current.lastSeq));
    if (!next || current.finishReason) return held.length === current.held.length ? current : { ...current, held };
    current = apply({ ...current, held: held.filter((e) => e !== next) }, next);
  }
}

/**
 * One stream event, delivered by the gateway `node` (when known). Returns the same object when the event changes
 * nothing (a duplicate), so memoized views of untouched streams do not re-render.
 */
export function applyStreamEvent(stream: StreamState | undefined, event: StreamEvent, node?: string): StreamState {
  const current = stream ?? newStream(event.streamId);
  if (event.seq <= current.lastSeq) return current;
  // After `done` nothing follows (a stream ends once); a late event would be a server bug: ignored.
  if (current.finishReason) return current;
  const inOrder = event.seq === current.lastSeq + 1 || event.type === "snapshot";
  if (!inOrder) {
    if (current.held.some((e) => e.seq === event.seq)) return current;
    const held = [...current.held, event].sort((a, b) => a.seq - b.seq).slice(0, MAX_HELD_EVENTS);
    return { ...current, held };
  }
  const applied = drain(apply(current, event));
  return node ? { ...applied, via: withVia(applied.via, node) } : applied;
}

export type StreamAction =
  /** Events from the socket, in arrival order, delivered by gateway `node`. */
  | { type: "events"; node?: string; events: StreamEvent[] }
  /** POST /api/chat answered 202: the stream exists, events will follow. */
  | { type: "register"; streamId: string; conversationId: string; messageId: string }
  /** Streams kept across a reload, or known from history: added unless already known. */
  | { type: "restore"; streams: StreamState[] }
  /** The stream cannot be followed any more (unknown to the server after a resume): it is not complete. */
  | { type: "interrupt"; streamId: string; error: StreamError }
  /** The session is gone (4401): its streams too. */
  | { type: "clear" };

export function streamsReducer(state: StreamsState, action: StreamAction): StreamsState {
  switch (action.type) {
    case "events": {
      let next: Record<string, StreamState> | undefined;
      for (const event of action.events) {
        const before = (next ?? state)[event.streamId];
        const after = applyStreamEvent(before, event, action.node);
        if (after !== before) {
          next ??= { ...state };
          next[event.streamId] = after;
        }
      }
      return next ?? state;
    }
    case "register": {
      const existing = state[action.streamId];
      if (existing?.conversationId && existing.messageId) return state;
      const base = existing ?? newStream(action.streamId);
      return {
        ...state,
        [action.streamId]: { ...base, conversationId: action.conversationId, messageId: action.messageId },
      };
    }
    case "restore": {
      const fresh = action.streams.filter((s) => !state[s.streamId]);
      if (fresh.length === 0) return state;
      const next = { ...state };
      for (const stream of fresh) next[stream.streamId] = stream;
      return next;
    }
    case "interrupt": {
      const existing = state[action.streamId];
      if (!existing || isFinal(existing)) return state;
      return { ...state, [action.streamId]: { ...existing, status: "interrupted", error: action.error, held: [] } };
    }
    case "clear":
      return Object.keys(state).length === 0 ? state : {};
  }
}

/** `hello.resume` / `resume.streams`: the last seq seen of every stream that has not had `done`. */
export function resumePoints(state: StreamsState): { streamId: string; afterSeq?: number }[] {
  return Object.values(state)
    .filter(isOpen)
    .map((s) => (s.lastSeq >= 0 ? { streamId: s.streamId, afterSeq: s.lastSeq } : { streamId: s.streamId }));
}
