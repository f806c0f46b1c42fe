/**
 * A client process of the scenarios (docs/benchmarks.md, "Scenarios"): protocol clients as the web client behaves,
 * each from a source address of its own, through nginx: a WebSocket with `hello` (a new session), `POST /api/chat`
 * with the session's token, and on a lost socket the web client's own reconnect policy (apps/web's ReconnectPolicy:
 * 125–250 ms after a drop, then doubling) with `hello {token, resume}`. Every event is checked as it arrives (seq
 * order, nothing repeated or skipped), and every step is stamped on CLOCK_MONOTONIC (bench/stats.ts nowMs), which
 * the coordinator shares. The coordinator (bench/failover.ts, bench/first-token.ts) forks it and asks through IPC.
 */
import { request as httpRequest } from "node:http";
import { WebSocket } from "ws";
import { ReconnectPolicy } from "../apps/web/src/reconnect-policy";
import { serveRequests } from "./ipc";
import type {
  ChatOpened,
  ChatOpenRequest,
  ChatStartRequest,
  FailoverStreamReport,
  FirstTokenChat,
  FirstTokenScheduleRequest,
} from "./protocol";
import { nowMs, sleepUntil } from "./stats";

const OPEN_CONCURRENCY = 50;
const WELCOME_TIMEOUT_MS = 20_000;
const MAX_ERRORS = 10;

interface StreamState {
  streamId: string;
  lastSeq: number;
  text: string;
  startAt?: number;
  firstChunkAt?: number;
  doneAt?: number;
  done?: { seq: number; finishReason: string; completionTokens?: number };
  violations: string[];
}

interface Frame {
  type: string;
  streamId?: string;
  seq?: number;
  delta?: string;
  content?: string;
  finishReason?: string;
  usage?: { completionTokens?: number };
  node?: string;
  sessionId?: string;
  token?: string;
  code?: string;
}

/** Resolvers waiting for a condition over every socket, checked after each event (no polling). */
const watchers = new Set<() => void>();
const checkWatchers = () => {
  for (const check of [...watchers]) check();
};

function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      watchers.delete(check);
      reject(new Error(`${what}: not within ${timeoutMs} ms`));
    }, timeoutMs);
    const check = () => {
      if (!condition()) return;
      watchers.delete(check);
      clearTimeout(timer);
      resolve();
    };
    watchers.add(check);
    check();
  });
}

class ChatSocket {
  ws: WebSocket | undefined;
  token: string | undefined;
  sessionId = "";
  node = "";
  nodeBefore = "";
  readonly streams = new Map<string, StreamState>();
  /** The failover stream of this socket. */
  streamId = "";
  prompt = "";
  closedAt: number | undefined;
  closeCode: number | undefined;
  readonly attemptsAt: number[] = [];
  welcomeAt: number | undefined;
  resumedAt: number | undefined;
  afterSeq: number | undefined;
  firstSeqAfter: number | undefined;
  unexpectedCloses = 0;
  readonly errors: string[] = [];
  private awaitingResume = false;
  private closing = false;
  private readonly policy = new ReconnectPolicy();

  constructor(
    readonly entry: string,
    readonly address: string,
    /** Reconnect and resume when the socket is lost (the failover); otherwise a close is only counted. */
    readonly reconnect: boolean,
  ) {}

  note(error: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push(error);
  }

  stream(streamId: string): StreamState {
    let state = this.streams.get(streamId);
    if (!state) {
      state = { streamId, lastSeq: -1, text: "", violations: [] };
      this.streams.set(streamId, state);
    }
    return state;
  }

  /** Opens the socket and sends hello (with the token and resume points once it has them); resolves on welcome. */
  connect(): Promise<void> {
    const ws = new WebSocket(`${this.entry.replace(/^http/, "ws")}/ws/chat`, {
      localAddress: this.address,
      perMessageDeflate: false,
    });
    this.ws = ws;
    const resume = [...this.streams.values()]
      .filter((s) => !s.done)
      .map((s) => (s.lastSeq >= 0 ? { streamId: s.streamId, afterSeq: s.lastSeq } : { streamId: s.streamId }));
    return new Promise<void>((resolve, reject) => {
      let welcomed = false;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${this.address}: no welcome within ${WELCOME_TIMEOUT_MS} ms`));
      }, WELCOME_TIMEOUT_MS);
      ws.once("open", () => {
        ws.send(
          JSON.stringify({
            type: "hello",
            ...(this.token ? { token: this.token } : {}),
            ...(resume.length > 0 ? { resume } : {}),
          }),
        );
      });
      ws.on("message", (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as Frame;
        if (frame.type === "welcome" && !welcomed) {
          welcomed = true;
          clearTimeout(timer);
          const reconnected = this.token !== undefined;
          this.token = frame.token;
          this.sessionId = frame.sessionId ?? "";
          this.node = frame.node ?? "";
          if (reconnected) {
            this.welcomeAt = nowMs();
            this.policy.succeeded();
            this.awaitingResume = resume.length > 0;
          }
          resolve();
          checkWatchers();
        } else if (frame.type === "error") this.note(`error frame ${frame.code}`);
        else if (frame.streamId !== undefined && frame.seq !== undefined) this.onEvent(frame);
      });
      ws.on("error", (error) => {
        if (welcomed) this.note(`socket error ${error.message}`);
      });
      ws.once("close", (code) => {
        clearTimeout(timer);
        if (!welcomed) {
          reject(new Error(`${this.address}: closed before welcome (${code})`));
          return;
        }
        if (this.closing) return;
        this.unexpectedCloses++;
        if (!this.reconnect) {
          this.note(`socket closed ${code}`);
          return;
        }
        if (this.closedAt === undefined) {
          this.closedAt = nowMs();
          this.closeCode = code;
          this.afterSeq = this.streams.get(this.streamId)?.lastSeq;
        }
        this.retry(code);
      });
    });
  }

  /** The web client's schedule: the next attempt after the policy's delay, again on failure. */
  private retry(code: number | undefined): void {
    setTimeout(() => {
      if (this.closing) return;
      this.attemptsAt.push(nowMs());
      this.connect().catch((error: unknown) => {
        this.note(error instanceof Error ? error.message : String(error));
        this.retry(undefined);
      });
    }, this.policy.nextDelay(code));
  }

  private onEvent(frame: Frame): void {
    const at = nowMs();
    const state = this.stream(frame.streamId!);
    const seq = frame.seq!;
    if (this.awaitingResume && frame.streamId === this.streamId) {
      this.awaitingResume = false;
      this.resumedAt = at;
      this.firstSeqAfter = seq;
    }
    if (state.done) state.violations.push(`${frame.type} ${seq} after done`);
    if (frame.type === "snapshot") {
      if (seq <= state.lastSeq) state.violations.push(`snapshot ${seq} not above ${state.lastSeq}`);
      state.text = frame.content ?? "";
    } else {
      if (seq <= state.lastSeq) state.violations.push(`${frame.type} ${seq} repeated (last ${state.lastSeq})`);
      else if (seq !== state.lastSeq + 1) state.violations.push(`${frame.type} ${seq} skipped from ${state.lastSeq}`);
      if (frame.type === "start") state.startAt ??= at;
      if (frame.type === "chunk") {
        state.firstChunkAt ??= at;
        state.text += frame.delta ?? "";
      }
      if (frame.type === "reset") state.text = "";
      if (frame.type === "done") {
        state.doneAt = at;
        state.done = { seq, finishReason: frame.finishReason ?? "", completionTokens: frame.usage?.completionTokens };
      }
    }
    if (seq > state.lastSeq) state.lastSeq = seq;
    checkWatchers();
  }

  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }
}

/** POST /api/chat through nginx from the socket's address, with its token; `sentAt` just before the request. */
function chat(socket: ChatSocket, message: string): Promise<{ status: number; streamId?: string; sentAt: number }> {
  const payload = JSON.stringify({ message });
  return new Promise((resolve, reject) => {
    const sentAt = nowMs();
    const req = httpRequest(
      `${socket.entry}/api/chat`,
      {
        method: "POST",
        localAddress: socket.address,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          authorization: `Bearer ${socket.token}`,
          connection: "close",
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          let streamId: string | undefined;
          try {
            streamId = (JSON.parse(Buffer.concat(chunks).toString()) as { streamId?: string }).streamId;
          } catch {
            streamId = undefined;
          }
          resolve({ status, streamId: status === 202 ? streamId : undefined, sentAt });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function inBatches<T>(items: T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

let sockets: ChatSocket[] = [];

function closeAll(): void {
  for (const s of sockets) s.close();
  sockets = [];
  watchers.clear();
}

serveRequests({
  /** One socket per address, each with a new session; where each landed. */
  open: async (request: ChatOpenRequest & { reconnect: boolean }): Promise<ChatOpened[]> => {
    closeAll();
    sockets = request.addresses.map((a) => new ChatSocket(request.entry, a, request.reconnect));
    await inBatches(sockets, OPEN_CONCURRENCY, async (s) => {
      await s.connect();
      s.nodeBefore = s.node;
    });
    return sockets.map((s) => ({ address: s.address, node: s.node, sessionId: s.sessionId }));
  },

  /** Failover: one long answer per socket. */
  start: async (request: ChatStartRequest) => {
    await inBatches(sockets, request.concurrency, async (s) => {
      s.prompt = `[demo:tokens=${request.tokens}] ${request.prompt} ${s.address}`;
      const accepted = await chat(s, s.prompt);
      if (!accepted.streamId) throw new Error(`chat from ${s.address}: ${accepted.status}`);
      s.streamId = accepted.streamId;
      s.stream(accepted.streamId);
    });
    return sockets.length;
  },

  /** Resolves once every socket's stream has reached `minSeq` (live, mid-answer). */
  live: async (request: { minSeq: number; timeoutMs: number }) => {
    await until(
      () => sockets.every((s) => (s.streams.get(s.streamId)?.lastSeq ?? -1) >= request.minSeq),
      request.timeoutMs,
      `every stream at seq ${request.minSeq}`,
    );
    return true;
  },

  /** Resolves once each socket at these addresses has lost its gateway, reconnected and had an event after it. */
  resumed: async (request: { addresses: string[]; timeoutMs: number }) => {
    const wanted = new Set(request.addresses);
    const mine = sockets.filter((s) => wanted.has(s.address));
    await until(
      () => mine.every((s) => s.resumedAt !== undefined || s.streams.get(s.streamId)?.done !== undefined),
      request.timeoutMs,
      `${mine.length} sockets resumed`,
    ).catch(() => undefined);
    return mine.filter((s) => s.resumedAt !== undefined).length;
  },

  /** Resolves once every socket's streams have ended (or the timeout passed: the report says which did not). */
  done: async (request: { timeoutMs: number }) => {
    await until(
      () => sockets.every((s) => [...s.streams.values()].every((st) => st.done !== undefined)),
      request.timeoutMs,
      "every stream done",
    ).catch(() => undefined);
    return true;
  },

  failoverReport: (): FailoverStreamReport[] =>
    sockets.map((s) => {
      const st = s.streams.get(s.streamId);
      return {
        address: s.address,
        streamId: s.streamId,
        prompt: s.prompt,
        nodeBefore: s.nodeBefore,
        ...(s.closedAt !== undefined ? { nodeAfter: s.node, closedAt: s.closedAt, closeCode: s.closeCode } : {}),
        attemptsAt: s.attemptsAt,
        ...(s.welcomeAt !== undefined ? { welcomeAt: s.welcomeAt } : {}),
        ...(s.resumedAt !== undefined ? { resumedAt: s.resumedAt, firstSeqAfter: s.firstSeqAfter } : {}),
        ...(s.afterSeq !== undefined ? { afterSeq: s.afterSeq } : {}),
        lastSeq: st?.lastSeq ?? -1,
        text: st?.text ?? "",
        ...(st?.done ? { done: st.done } : {}),
        violations: st?.violations ?? ["no stream"],
        errors: s.errors,
      };
    }),

  /**
   * First token: this process's chats of an even schedule over every client process, each a new conversation from
   * its socket's session; waits for every answer's done.
   */
  firstToken: async (
    request: FirstTokenScheduleRequest & { doneTimeoutMs: number },
  ): Promise<{ chats: FirstTokenChat[]; errors: string[]; unexpectedCloses: number }> => {
    const chats: FirstTokenChat[] = [];
    const pending: Promise<void>[] = [];
    const links: { chat: FirstTokenChat; socket: ChatSocket }[] = [];
    for (const { k, socket: index } of request.chats) {
      const due = request.t0 + k * request.intervalMs;
      await sleepUntil(due);
      const socket = sockets[index]!;
      const record: FirstTokenChat = { k, status: 0, sentAt: 0, lagMs: 0, violations: [] };
      chats.push(record);
      pending.push(
        chat(socket, `[demo:tokens=${request.tokens}] ${request.prompt} ${k}`).then(
          (accepted) => {
            record.acceptedAt = nowMs();
            record.status = accepted.status;
            record.sentAt = accepted.sentAt;
            record.lagMs = Math.max(0, accepted.sentAt - due);
            if (accepted.streamId) {
              record.streamId = accepted.streamId;
              socket.stream(accepted.streamId);
              links.push({ chat: record, socket });
            }
          },
          (error: unknown) => {
            record.violations.push(`chat failed: ${error instanceof Error ? error.message : String(error)}`);
          },
        ),
      );
    }
    await Promise.all(pending);
    await until(
      () => links.every(({ chat: c, socket }) => socket.streams.get(c.streamId!)?.done !== undefined),
      request.doneTimeoutMs,
      "every answer done",
    ).catch(() => undefined);
    for (const { chat: c, socket } of links) {
      const st = socket.streams.get(c.streamId!)!;
      Object.assign(c, {
        ...(st.startAt !== undefined ? { startAt: st.startAt } : {}),
        ...(st.firstChunkAt !== undefined ? { firstChunkAt: st.firstChunkAt } : {}),
        ...(st.doneAt !== undefined ? { doneAt: st.doneAt, finishReason: st.done?.finishReason } : {}),
      });
      c.violations.push(...st.violations);
      if (!st.done) c.violations.push("no done");
    }
    return {
      chats,
      errors: sockets.flatMap((s) => s.errors.map((e) => `${s.address}: ${e}`)).slice(0, MAX_ERRORS),
      unexpectedCloses: sockets.reduce((sum, s) => sum + s.unexpectedCloses, 0),
    };
  },

  close: () => {
    closeAll();
    return true;
  },
});
