import { once } from "node:events";
import { request as httpRequest } from "node:http";
import type { ServerFrame } from "@chatgrid/protocol";
import { WebSocket } from "ws";

/** What one client saw of one stream, checked as it arrives: order, gaps and duplicates are recorded. */
export interface StreamView {
  streamId: string;
  lastSeq: number;
  text: string;
  done?: Extract<ServerFrame, { type: "done" }>;
  start?: Extract<ServerFrame, { type: "start" }>;
  resets: number;
  snapshots: number;
  violations: string[];
}

type Waiter = { test: (frame: ServerFrame) => boolean; resolve: (frame: ServerFrame) => void };

/**
 * A protocol client for tests: REST over fetch, the WebSocket over `ws`. It applies the stream rules of
 * docs/protocol.md (seq order, reset, snapshot) and records every violation instead of hiding it.
 */
export class ChatClient {
  ws: WebSocket | undefined;
  token: string | undefined;
  sessionId: string | undefined;
  node: string | undefined;
  readonly frames: ServerFrame[] = [];
  readonly streams = new Map<string, StreamView>();
  closeCode: number | undefined;
  private waiters: Waiter[] = [];
  private closeWaiters: ((code: number) => void)[] = [];

  /**
   * @param localAddress the source address of every connection (e.g. 127.0.5.1): nginx's ip_hash pins clients by
   *   address, so tests of stickiness and failover through nginx give each client its own.
   */
  constructor(
    public baseUrl: string,
    readonly localAddress?: string,
  ) {}

  get wsUrl(): string {
    return `${this.baseUrl.replace(/^http/, "ws")}/ws/chat`;
  }

  view(streamId: string): StreamView {
    let view = this.streams.get(streamId);
    if (!view) {
      view = { streamId, lastSeq: -1, text: "", resets: 0, snapshots: 0, violations: [] };
      this.streams.set(streamId, view);
    }
    return view;
  }

  /** Opens the socket and sends hello (with the token and resume points when given); resolves on welcome. */
  async connect(
    options: { resume?: { streamId: string; afterSeq?: number }[]; headers?: Record<string, string> } = {},
  ) {
    const ws = new WebSocket(this.wsUrl, { headers: options.headers, localAddress: this.localAddress });
    this.ws = ws;
    this.closeCode = undefined;
    ws.on("message", (data) => this.onFrame(JSON.parse(data.toString()) as ServerFrame));
    ws.on("close", (code) => {
      this.closeCode = code;
      for (const waiter of this.closeWaiters.splice(0)) waiter(code);
    });
    ws.on("error", () => undefined);
    await once(ws, "open");
    const welcome = this.next((f) => f.type === "welcome");
    ws.send(
      JSON.stringify({
        type: "hello",
        ...(this.token ? { token: this.token } : {}),
        ...(options.resume ? { resume: options.resume } : {}),
      }),
    );
    const frame = (await welcome) as Extract<ServerFrame, { type: "welcome" }>;
    this.token = frame.token;
    this.sessionId = frame.sessionId;
    this.node = frame.node;
    return frame;
  }

  /**
   * Reconnects as docs/protocol.md asks of clients: exponential backoff with jitter (250 ms, doubling, capped at 10 s),
   * hello with the token and the last seq of every unfinished stream.
   */
  async reconnect(maxTries = 8) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.connect({ resume: this.resumePoints() });
      } catch (error) {
        if (attempt + 1 >= maxTries) throw error;
        const delay = Math.min(250 * 2 ** attempt, 10_000);
        await new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * (delay / 2)));
      }
    }
  }

  /** The resume points of every stream that has not ended, as a reconnecting client sends them. */
  resumePoints(): { streamId: string; afterSeq?: number }[] {
    return [...this.streams.values()]
      .filter((v) => !v.done)
      .map((v) => (v.lastSeq >= 0 ? { streamId: v.streamId, afterSeq: v.lastSeq } : { streamId: v.streamId }));
  }

  send(frame: unknown): void {
    this.ws?.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  closed(): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  close(): void {
    this.ws?.terminate();
  }

  /** Resolves with the next frame (from now on) that passes the test. */
  next(test: (frame: ServerFrame) => boolean, timeoutMs = 20_000): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
      });
    });
  }

  /** Resolves with the next `count` frames (from now on) that pass the test, in arrival order. */
  async nextMany(test: (frame: ServerFrame) => boolean, count: number, timeoutMs = 20_000): Promise<ServerFrame[]> {
    const seen: ServerFrame[] = [];
    await this.next((frame) => test(frame) && seen.push(frame) >= count, timeoutMs);
    return seen;
  }

  /** Resolves when the stream has ended (possibly already). */
  async done(streamId: string, timeoutMs = 30_000): Promise<StreamView> {
    const view = this.view(streamId);
    if (!view.done) await this.next((f) => f.type === "done" && f.streamId === streamId, timeoutMs);
    return view;
  }

  /**
   * Starts this client's view of a stream as `other` had it at `throughSeq`, by the same rules as frames that arrive
   * (a reset at or before that seq clears the text, as it did for `other`): for a client that resumes from there.
   */
  seedFrom(other: ChatClient, streamId: string, throughSeq: number): StreamView {
    const view = this.view(streamId);
    for (const frame of other.frames) {
      if ("streamId" in frame && "seq" in frame && frame.streamId === streamId && frame.seq <= throughSeq) {
        this.apply(view, frame);
      }
    }
    return view;
  }

  private onFrame(frame: ServerFrame): void {
    this.frames.push(frame);
    if ("streamId" in frame && "seq" in frame) this.apply(this.view(frame.streamId), frame);
    for (const waiter of [...this.waiters]) {
      if (waiter.test(frame)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(frame);
      }
    }
  }

  /** Applies one stream event to a view (docs/protocol.md's stream rules), recording what breaks them. */
  private apply(view: StreamView, frame: Extract<ServerFrame, { streamId: string; seq: number }>): void {
    if (frame.type === "snapshot") {
      if (frame.seq <= view.lastSeq) view.violations.push(`snapshot seq ${frame.seq} not above ${view.lastSeq}`);
      view.text = frame.content;
      view.snapshots++;
    } else {
      if (frame.seq !== view.lastSeq + 1) view.violations.push(`${frame.type} seq ${frame.seq} after ${view.lastSeq}`);
      if (view.done) view.violations.push(`${frame.type} after done`);
      if (frame.type === "chunk") view.text += frame.delta;
      if (frame.type === "reset") {
        view.text = "";
        view.resets++;
      }
      if (frame.type === "start") view.start = frame;
      if (frame.type === "done") view.done = frame;
    }
    view.lastSeq = Math.max(view.lastSeq, frame.seq);
  }

  // REST ------------------------------------------------------------------------------------------

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const response = await this.send_(method, path, payload, {
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      ...headers,
    });
    let json: unknown;
    try {
      json = response.text ? JSON.parse(response.text) : undefined;
    } catch {
      json = response.text;
    }
    return {
      status: response.status,
      body: json as Record<string, unknown> & { error?: { code: string; message: string } },
      headers: response.headers,
    };
  }

  /** node:http rather than fetch, because only it lets a request choose its source address. */
  private send_(method: string, path: string, payload: string | undefined, headers: Record<string, string>) {
    return new Promise<{ status: number; text: string; headers: Headers }>((resolve, reject) => {
      const req = httpRequest(
        `${this.baseUrl}${path}`,
        { method, headers: { ...headers, connection: "close" }, localAddress: this.localAddress },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const responseHeaders = new Headers();
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") responseHeaders.set(k, v);
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: responseHeaders });
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  async createSession(): Promise<void> {
    const response = await this.request("POST", "/api/sessions");
    if (response.status !== 201) throw new Error(`session: ${response.status}`);
    this.token = response.body.token as string;
    this.sessionId = response.body.sessionId as string;
  }

  async chat(message: string, extra: { conversationId?: string; clientMessageId?: string } = {}) {
    const response = await this.request("POST", "/api/chat", { message, ...extra });
    if (response.status !== 202) throw new Error(`chat: ${response.status} ${JSON.stringify(response.body)}`);
    const accepted = response.body as { streamId: string; conversationId: string; messageId: string };
    this.view(accepted.streamId);
    return accepted;
  }

  /** The whole conversation: every page, newest first, put back in order. */
  async history(conversationId: string) {
    type Message = { id: string; role: string; content: string; status: string; streamId?: string };
    const pages: Message[][] = [];
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams({ conversationId, limit: "200", ...(cursor ? { cursor } : {}) });
      const response = await this.request("GET", `/api/history?${query}`);
      if (response.status !== 200) throw new Error(`history: ${response.status}`);
      const page = response.body as unknown as { messages: Message[]; nextCursor?: string };
      pages.unshift(page.messages);
      cursor = page.nextCursor;
    } while (cursor);
    return { conversationId, messages: pages.flat() };
  }
}
