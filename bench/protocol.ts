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
