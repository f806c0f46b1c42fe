import { Agent, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** A reply from an AI node: its status and (up to `MAX_REPLY_BYTES` of) its body. */
export interface NodeReply {
  status: number;
  text: string;
}

export interface NodeCall {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** The whole exchange (a queued wait for a socket, connect, request, reply) ends within this. */
  timeoutMs: number;
  /** Read the reply's body (false: the status is all the caller needs). */
  readBody?: boolean;
}

/** How the gateway calls AI nodes (dispatch, health): `node:http` in service, an injected `fetch` in tests. */
export interface NodeTransport {
  call(url: string, call: NodeCall): Promise<NodeReply>;
  /** Closes pooled connections. */
  close(): void;
}

/** An AI node's replies are a few bytes of JSON; anything past this is not kept. */
export const MAX_REPLY_BYTES = 64 * 1024;

export class NodeCallTimeout extends Error {
  constructor(timeoutMs: number) {
    super(`no reply within ${timeoutMs} ms`);
    this.name = "TimeoutError";
  }
}

/** The transport over `fetch` (what tests inject): a timeout signal, the body read as text, "" if that fails. */
export function fetchTransport(fetchImpl: typeof fetch): NodeTransport {
  return {
    async call(url, call) {
      const response = await fetchImpl(url, {
        method: call.method,
        headers: call.headers,
        body: call.body,
        signal: AbortSignal.timeout(call.timeoutMs),
      });
      if (call.readBody === false) {
        await response.body?.cancel().catch(() => undefined);
        return { status: response.status, text: "" };
      }
      return { status: response.status, text: await response.text().catch(() => "") };
    },
    close() {},
  };
}

export interface NodeHttpOptions {
  /** Connections per AI node at most (concurrent calls beyond it wait for one, within their timeout). */
  maxSocketsPerNode: number;
  /** Idle connections kept per AI node for the next calls. */
  maxFreeSocketsPerNode: number;
}

export const NODE_HTTP_DEFAULTS: NodeHttpOptions = { maxSocketsPerNode: 64, maxFreeSocketsPerNode: 16 };

const isStaleSocketError = (error: unknown): boolean =>
  error instanceof Error && ["ECONNRESET", "EPIPE"].includes((error as NodeJS.ErrnoException).code ?? "");

/**
 * The transport over `node:http` with a keep-alive agent: a call reuses an idle connection to its node instead of
 * opening one, and skips undici's web streams. The connections are bounded per node. A call whose reused
 * connection turns out closed by the node before any reply (its idle timeout raced us) is sent once more on a
 * fresh connection, within the same deadline: the node never saw it (and a dispatch is idempotent anyway, 409).
 */
export function nodeHttpTransport(options: NodeHttpOptions = NODE_HTTP_DEFAULTS): NodeTransport {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.maxSocketsPerNode,
    maxFreeSockets: options.maxFreeSocketsPerNode,
    scheduling: "lifo",
  });
  const once = (url: URL, call: NodeCall, deadline: number, pooled: boolean) =>
    new Promise<NodeReply>((resolve, reject) => {
      const headers: Record<string, string | number> = { ...call.headers };
      if (call.body !== undefined) headers["content-length"] = Buffer.byteLength(call.body);
      const send = url.protocol === "https:" ? httpsRequest : httpRequest;
      const req = send(url, {
        method: call.method,
        headers,
        // https gets its own default agent; a fresh connection for the retry of a stale one.
        ...(url.protocol === "https:" ? {} : { agent: pooled ? agent : false }),
      });
      let status: number | undefined;
      let settled = false;
      const finish = (outcome: { reply: NodeReply } | { error: unknown }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if ("reply" in outcome) resolve(outcome.reply);
        else reject(outcome.error);
      };
      const timer = setTimeout(
        () => {
          // As with fetch: a reply whose head came in time counts, with no body; otherwise the call failed.
          if (status !== undefined) finish({ reply: { status, text: "" } });
          else finish({ error: new NodeCallTimeout(call.timeoutMs) });
          req.destroy();
        },
        Math.max(0, deadline - Date.now()),
      );
      req.on("error", (error) => {
        if (settled) return;
        if (status === undefined && pooled && req.reusedSocket && isStaleSocketError(error)) {
          settled = true;
          clearTimeout(timer);
          once(url, call, deadline, false).then(resolve, reject);
          return;
        }
        finish({ error });
      });
      req.on("response", (res) => {
        status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (chunk: Buffer) => {
          if (call.readBody === false || kept >= MAX_REPLY_BYTES) return;
          chunks.push(chunk);
          kept += chunk.length;
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).subarray(0, MAX_REPLY_BYTES).toString("utf8");
          finish({ reply: { status: status ?? 0, text } });
        });
        res.on("error", () => finish({ reply: { status: status ?? 0, text: "" } }));
        res.on("aborted", () => finish({ reply: { status: status ?? 0, text: "" } }));
      });
      req.end(call.body);
    });
  return {
    call: (url, call) => once(new URL(url), call, Date.now() + call.timeoutMs, true),
    close: () => agent.destroy(),
  };
}
