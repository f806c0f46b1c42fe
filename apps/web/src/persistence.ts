import {
  type ConversationSummary,
  ConversationSummarySchema,
  FinishReasonSchema,
  StreamErrorSchema,
} from "@chatgrid/protocol";
import { isOpen, newStream, type StreamState, type StreamsState } from "./stream-reducer";

/** The part of `Storage` this module uses, so tests pass a Map-backed one. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * What survives a page reload, in localStorage: the session token, the conversation list, the open conversation,
 * UI preferences, and every unfinished stream with its text and last seq (a consistent pair taken from one reducer
 * state, so the resume after a reload continues exactly where the saved text ends).
 * Everything read back is validated: a tampered or outdated entry is dropped, never trusted.
 */
export interface UiPrefs {
  panelOpen: boolean;
}

type Parser<T> = (value: unknown) => T | undefined;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown): string | undefined => (typeof value === "string" && value.length > 0 ? value : undefined);
const count = (value: unknown): number => (Number.isInteger(value) && (value as number) >= 0 ? (value as number) : 0);

const parseToken: Parser<string> = str;
const parseUi: Parser<UiPrefs> = (value) => (isRecord(value) ? { panelOpen: value.panelOpen === true } : undefined);
const parseConversations: Parser<ConversationSummary[]> = (value) => {
  const parsed = ConversationSummarySchema.array().safeParse(value);
  return parsed.success ? parsed.data : undefined;
};

/** One unfinished stream as saved by `saveOpenStreams`. */
function parseOpenStream(value: unknown): StreamState | undefined {
  if (!isRecord(value)) return undefined;
  const { streamId, lastSeq, text, status } = value;
  if (!str(streamId) || typeof text !== "string" || (status !== "waiting" && status !== "streaming")) return undefined;
  if (!Number.isInteger(lastSeq) || (lastSeq as number) < -1) return undefined;
  const via = Array.isArray(value.via) ? value.via.filter((v): v is string => typeof v === "string") : [];
  const finishReason = FinishReasonSchema.safeParse(value.finishReason);
  const error = StreamErrorSchema.safeParse(value.error);
  return newStream(streamId as string, {
    lastSeq: lastSeq as number,
    text,
    status,
    conversationId: str(value.conversationId),
    messageId: str(value.messageId),
    aiNode: str(value.aiNode),
    via,
    resets: count(value.resets),
    snapshots: count(value.snapshots),
    ...(finishReason.success ? { finishReason: finishReason.data } : {}),
    ...(error.success ? { error: error.data } : {}),
  });
}

const parseOpenStreams: Parser<StreamState[]> = (value) =>
  Array.isArray(value) ? value.map(parseOpenStream).filter((s): s is StreamState => s !== undefined) : undefined;

export const STORAGE_PREFIX = "chatgrid.v1.";
const KEYS = {
  token: "token",
  conversations: "conversations",
  active: "activeConversation",
  streams: "openStreams",
  ui: "ui",
} as const;

export class Persistence {
  constructor(
    private readonly storage: KeyValueStorage | undefined,
    private readonly prefix = STORAGE_PREFIX,
  ) {}

  private read<T>(key: string, parse: Parser<T>): T | undefined {
    try {
      const raw = this.storage?.getItem(this.prefix + key);
      if (raw == null) return undefined;
      return parse(JSON.parse(raw));
    } catch {
      return undefined;
    }
  }

  private write(key: string, value: unknown): void {
    try {
      if (value === undefined) this.storage?.removeItem(this.prefix + key);
      else this.storage?.setItem(this.prefix + key, JSON.stringify(value));
    } catch {
      // Quota exceeded or storage disabled (private mode): the app keeps working, only without persistence.
    }
  }

  loadToken(): string | undefined {
    return this.read(KEYS.token, parseToken);
  }

  saveToken(token: string | undefined): void {
    this.write(KEYS.token, token);
  }

  loadConversations(): ConversationSummary[] {
    return this.read(KEYS.conversations, parseConversations) ?? [];
  }

  saveConversations(conversations: ConversationSummary[]): void {
    this.write(KEYS.conversations, conversations);
  }

  loadActive(): string | null {
    return this.read(KEYS.active, str) ?? null;
  }

  saveActive(conversationId: string | null): void {
    this.write(KEYS.active, conversationId ?? undefined);
  }

  loadUi(): UiPrefs {
    return this.read(KEYS.ui, parseUi) ?? { panelOpen: false };
  }

  saveUi(prefs: UiPrefs): void {
    this.write(KEYS.ui, prefs);
  }

  /** Unfinished streams, as they were at the last save (held events are not kept: the resume sends them again). */
  loadOpenStreams(): StreamState[] {
    return this.read(KEYS.streams, parseOpenStreams) ?? [];
  }

  /** Keeps only what is still open; finished streams are read from history when needed. */
  saveOpenStreams(streams: StreamsState): void {
    const open = Object.values(streams)
      .filter(isOpen)
      .map(({ held: _held, usage: _usage, ...rest }) => rest);
    this.write(KEYS.streams, open.length > 0 ? open : undefined);
  }

  /** The session is gone (4401): nothing of it is reachable any more. UI preferences stay. */
  clearSession(): void {
    for (const key of [KEYS.token, KEYS.conversations, KEYS.active, KEYS.streams]) this.write(key, undefined);
  }
}

/** A Map-backed storage (tests, and browsers where localStorage throws). */
export class MemoryStorage implements KeyValueStorage {
  readonly map = new Map<string, string>();
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
  removeItem(key: string): void {
    this.map.delete(key);
  }
}

/** localStorage when the browser allows it. */
export function browserStorage(): KeyValueStorage | undefined {
  try {
    const storage = globalThis.localStorage;
    const probe = `${STORAGE_PREFIX}probe`;
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return undefined;
  }
}
