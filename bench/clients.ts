/**
 * A client process of the benchmark (docs/benchmarks.md, "Method"): it opens one socket per stream through nginx,
 * as each system's own clients would (ws with a `hello` for chatgrid, ws for the bare relay, socket.io-client with
 * the WebSocket transport for Socket.IO), and records every measured chunk: latency from the publisher's stamp
 * (CLOCK_MONOTONIC, shared by every process), lost and duplicated seqs per stream, reordering, and the longest gap.
 * The coordinator (bench/harness.ts) forks it and asks through IPC.
 */
import { io, type Socket } from "socket.io-client";
import { WebSocket } from "ws";
import { serveRequests } from "./ipc";
import {
  type ClientIdleRequest,
  type ClientLoadRequest,
  type ClientReport,
  type SeqRange,
  type SystemName,
  WS_PATHS,
} from "./protocol";
import { Histogram, nowMs } from "./stats";

interface StreamState {
  /** One byte per measured seq: received yet? */
  seen: Uint8Array;
  distinct: number;
  lastSeq: number;
  lastMeasuredAt: number;
}

/** A socket of either library, closed the same way. */
interface OpenSocket {
  close(): void;
}

const OPEN_TIMEOUT_MS = 20_000;
const OPEN_CONCURRENCY = 100;
const MAX_ERRORS = 20;

let histogram = new Histogram();
let duplicated = 0;
let reordered = 0;
let maxGapMs = 0;
let unexpectedCloses = 0;
let errors: string[] = [];
let range: SeqRange = { warmupSeqs: 0, measuredSeqs: 0 };
let states: StreamState[] = [];
let sockets: OpenSocket[] = [];
let closing = false;

const note = (error: string) => {
  if (errors.length < MAX_ERRORS) errors.push(error);
};

function onChunk(state: StreamState, seq: number, sentAt: number): void {
  const at = nowMs();
  const offset = seq - range.warmupSeqs - 1;
  if (offset < 0 || offset >= range.measuredSeqs) {
    if (seq > state.lastSeq) state.lastSeq = seq;
    return;
  }
  if (state.seen[offset] === 1) {
    duplicated++;
    return;
  }
  state.seen[offset] = 1;
  state.distinct++;
  histogram.add(at - sentAt);
  if (seq < state.lastSeq) reordered++;
  else state.lastSeq = seq;
  if (state.lastMeasuredAt > 0 && at - state.lastMeasuredAt > maxGapMs) maxGapMs = at - state.lastMeasuredAt;
  state.lastMeasuredAt = at;
}

const wsEntry = (entry: string) => entry.replace(/^http/, "ws");

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: no welcome within ${OPEN_TIMEOUT_MS} ms`)),
      OPEN_TIMEOUT_MS,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A raw WebSocket (bare relay, chatgrid): resolves on the first `welcome` frame. chatgrid's socket sends `hello`
 * first (with the stream's session token, or none for an idle socket: the gateway then makes a session).
 */
function openWs(url: string, hello: object | undefined, state: StreamState | undefined): Promise<OpenSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const opened = new Promise<OpenSocket>((resolve, reject) => {
    let welcomed = false;
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string; seq?: number; delta?: string; code?: string };
      if (frame.type === "chunk") {
        if (state) onChunk(state, frame.seq ?? -1, Number(frame.delta));
      } else if (frame.type === "welcome" && !welcomed) {
        welcomed = true;
        resolve({ close: () => ws.terminate() });
      } else if (frame.type === "error") {
        note(`error frame ${frame.code}`);
      }
    });
    ws.once("open", () => {
      if (hello) ws.send(JSON.stringify(hello));
    });
    ws.once("error", (error) => {
      if (!welcomed) reject(error);
      else note(`socket error ${error.message}`);
    });
    ws.once("close", (code) => {
      if (!welcomed) reject(new Error(`closed before welcome (${code})`));
      else if (!closing) {
        unexpectedCloses++;
        note(`socket closed ${code}`);
      }
    });
  });
  return withTimeout(opened, url);
}

/** A Socket.IO client: WebSocket transport only (through nginx), the stream's room in `auth`, no reconnection. */
function openSocketIo(entry: string, room: string, state: StreamState | undefined): Promise<OpenSocket> {
  const socket: Socket = io(entry, {
    path: WS_PATHS.socketio,
    transports: ["websocket"],
    auth: { stream: room },
    reconnection: false,
    forceNew: true,
    timeout: OPEN_TIMEOUT_MS,
  });
  const opened = new Promise<OpenSocket>((resolve, reject) => {
    let welcomed = false;
    if (state)
      socket.on("chunk", (message: { seq: number; delta: string }) =>
        onChunk(state, message.seq, Number(message.delta)),
      );
    socket.once("welcome", () => {
      welcomed = true;
      resolve({ close: () => socket.disconnect() });
    });
    socket.once("connect_error", (error) => reject(error));
    socket.on("disconnect", (reason) => {
      if (welcomed && !closing) {
        unexpectedCloses++;
        note(`socket.io disconnect ${reason}`);
      }
    });
  });
  return withTimeout(opened, `${entry} room ${room}`);
}

function open(system: SystemName, entry: string, channel: string, token: string | undefined, state?: StreamState) {
  switch (system) {
    case "bare":
      return openWs(`${wsEntry(entry)}${WS_PATHS.bare}?channel=${encodeURIComponent(channel)}`, undefined, state);
    case "chatgrid":
      return openWs(
        `${wsEntry(entry)}${WS_PATHS.chatgrid}`,
        token ? { type: "hello", token } : { type: "hello" },
        state,
      );
    case "socketio":
      return openSocketIo(entry, channel, state);
  }
}

/** Opens `count` sockets, OPEN_CONCURRENCY at a time. */
async function openMany(count: number, one: (i: number) => Promise<OpenSocket>): Promise<void> {
  for (let i = 0; i < count; i += OPEN_CONCURRENCY) {
    const batch = Array.from({ length: Math.min(OPEN_CONCURRENCY, count - i) }, (_, k) => one(i + k));
    sockets.push(...(await Promise.all(batch)));
  }
}

function reset(): void {
  closing = true;
  for (const socket of sockets) socket.close();
  sockets = [];
  states = [];
  histogram = new Histogram();
  duplicated = 0;
  reordered = 0;
  maxGapMs = 0;
  unexpectedCloses = 0;
  errors = [];
  closing = false;
}

serveRequests({
  /** One socket per stream, each recording its stream's measured chunks. */
  load: async (request: ClientLoadRequest) => {
    reset();
    range = request.range;
    states = request.streams.map(() => ({
      seen: new Uint8Array(request.range.measuredSeqs),
      distinct: 0,
      lastSeq: -1,
      lastMeasuredAt: 0,
    }));
    await openMany(request.streams.length, (i) => {
      const stream = request.streams[i]!;
      return open(request.system, request.entry, stream.channel, stream.token, states[i]);
    });
    return { opened: sockets.length };
  },
  /** Idle sockets (memory per socket): each its own channel, room or session. */
  idle: async (request: ClientIdleRequest) => {
    await openMany(request.count, (i) => open(request.system, request.entry, `${request.prefix}-${i}`, undefined));
    return { opened: sockets.length };
  },
  progress: () => states.reduce((sum, s) => sum + s.distinct, 0),
  report: (): ClientReport => ({
    distinct: states.reduce((sum, s) => sum + s.distinct, 0),
    duplicated,
    reordered,
    distinctPerStream: states.map((s) => s.distinct),
    histogram: histogram.toSparse(),
    maxLatencyMs: histogram.max,
    maxGapMs,
    unexpectedCloses,
    errors,
  }),
  close: () => {
    reset();
    return true;
  },
});
