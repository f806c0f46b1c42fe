/**
 * What the coordinator, the publisher and the clients agree on: the systems under test, the streams, the measured
 * range of seqs, and the reports (docs/benchmarks.md, "Method").
 */
import type { SparseHistogram } from "./stats";

export const SYSTEMS = ["bare", "socketio", "chatgrid"] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  bare: "bare relay",
  socketio: "Socket.IO + Redis adapter",
  chatgrid: "chatgrid (1 gateway)",
};

export const isSystem = (name: string): name is SystemName => (SYSTEMS as readonly string[]).includes(name);

/** The WebSocket paths of each system, all under nginx's `/ws/` location. */
export const WS_PATHS: Record<SystemName, string> = {
  bare: "/ws/bare",
  socketio: "/ws/socket.io/",
  chatgrid: "/ws/chat",
};

/** One stream, one socket. */
export interface StreamSpec {
  index: number;
  /** The id frames carry (chatgrid: the stream's real id). */
  streamId: string;
  /** bare: the Redis channel; socketio: the room. */
  channel: string;
  /** chatgrid: the session the stream belongs to, and its token for the client's hello. */
  sessionId?: string;
  token?: string;
  conversationId?: string;
  messageId?: string;
}

/**
 * Each stream publishes seqs 1 … warmupSeqs + measuredSeqs; the measured ones are warmupSeqs+1 … and only they
 * count (latency, loss, duplicates, gaps). The seq says which phase a chunk belongs to, in every process alike.
 */
export interface SeqRange {
  warmupSeqs: number;
  measuredSeqs: number;
}

export interface ClientLoadRequest {
  system: SystemName;
  /** nginx's public entry, `http://127.0.0.1:<port>`. */
  entry: string;
  streams: StreamSpec[];
  range: SeqRange;
  rate: number;
}

export interface ClientIdleRequest {
  system: SystemName;
  entry: string;
  count: number;
  /** Makes channels, rooms unique across client processes. */
  prefix: string;
}

export interface ClientReport {
  /** Distinct measured chunks received, over all streams. */
  distinct: number;
  /** Measured chunks received again (same stream, same seq). */
  duplicated: number;
  /** Chunks that came with a lower seq than one already received on the stream. */
  reordered: number;
  /** Per stream (in the request's order): distinct measured chunks received. */
  distinctPerStream: number[];
  histogram: SparseHistogram;
  maxLatencyMs: number;
  /** The longest time between two measured chunks of one stream, over all streams. */
  maxGapMs: number;
  /** Sockets that closed while the benchmark needed them. */
  unexpectedCloses: number;
  errors: string[];
}

export interface PublisherPrimeRequest {
  system: SystemName;
  redisUrl: string;
  redisPassword: string;
  streams: StreamSpec[];
}

export interface PublisherRunRequest {
  rate: number;
  range: SeqRange;
  /** nowMs() at which stream 0's first chunk is due. */
  t0: number;
}

export interface PublisherReport {
  published: number;
  /** Publishes that Redis refused or the append script rejected, by reason. */
  failures: Record<string, number>;
  /** How late the publisher sent chunks against their schedule (ms). */
  lagP99Ms: number;
  lagMaxMs: number;
}

// The scenarios (docs/benchmarks.md, "Scenarios"): bench/chat-clients.ts speaks the whole protocol (REST through
// nginx, the WebSocket with hello and resume) from source addresses of its own, for bench/failover.ts and
// bench/first-token.ts.

export const SCENARIOS = ["failover", "first-token", "redis-floor", "capacity"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const isScenario = (name: string): name is ScenarioName => (SCENARIOS as readonly string[]).includes(name);

export interface ChatOpenRequest {
  /** nginx's public entry, `http://127.0.0.1:<port>`. */
  entry: string;
  /** One socket per address (127.0.S.H: nginx's ip_hash keys on 127.0.S, its per-address limits on the whole). */
  addresses: string[];
}

/** Where each socket landed: the gateway of its welcome, and its session. */
export interface ChatOpened {
  address: string;
  node: string;
  sessionId: string;
}

export interface ChatStartRequest {
  /** `[demo:tokens=N]` is added in front; every socket's prompt is `<prompt> <address>`. */
  prompt: string;
  tokens: number;
  /** Chats are sent this many at a time per client process. */
  concurrency: number;
}

/** One socket's stream as its client saw it, across the gateway's death and its resume. */
export interface FailoverStreamReport {
  address: string;
  streamId: string;
  prompt: string;
  nodeBefore: string;
  /** The gateway of the welcome after the reconnect (undefined: never lost its socket). */
  nodeAfter?: string;
  /** nowMs() of: the socket's close, each reconnect attempt, the welcome, the first event after afterSeq. */
  closedAt?: number;
  closeCode?: number;
  attemptsAt: number[];
  welcomeAt?: number;
  resumedAt?: number;
  afterSeq?: number;
  /** The first seq the new socket delivered (afterSeq + 1 when nothing was lost). */
  firstSeqAfter?: number;
  lastSeq: number;
  text: string;
  done?: { seq: number; finishReason: string; completionTokens?: number };
  /** Seqs out of order, repeated or skipped, events after done. */
  violations: string[];
  errors: string[];
}

export interface FirstTokenScheduleRequest {
  /** nowMs() of the first chat; chat k is sent at t0 + k × intervalMs. */
  t0: number;
  intervalMs: number;
  /** Chat k of the whole schedule; each client process gets the ks of its own sockets. */
  chats: { k: number; socket: number }[];
  /** Chats below this k are the warm-up: sent and checked, not measured. */
  measuredFrom: number;
  prompt: string;
  tokens: number;
}

/** Per chat, nowMs() of each step; `sentAt` is just before the request's bytes go out. */
export interface FirstTokenChat {
  k: number;
  status: number;
  streamId?: string;
  sentAt: number;
  acceptedAt?: number;
  startAt?: number;
  firstChunkAt?: number;
  doneAt?: number;
  finishReason?: string;
  /** How late the client sent the chat against its schedule (ms). */
  lagMs: number;
  violations: string[];
}
