import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { Context } from "hono";
import { type RawData, type WebSocket, WebSocketServer } from "ws";

/** The handlers of one socket's life (a SocketHandler). */
export interface SocketEvents {
  onMessage(data: string | ArrayBuffer): void;
  onClose(code?: number): void;
}

/** What a socket's events are found under: the socket itself, so the listeners below are shared by every socket. */
const EVENTS = Symbol("socket events");
/** Set on `c.env` by the route when it accepts an upgrade: the client's address. */
const ACCEPTED = Symbol("socket accepted");

type TrackedSocket<E> = WebSocket & { [EVENTS]?: E };

/** `c.env` of an upgrade request: node's request (for the peer's address, as @hono/node-server gives it). */
interface UpgradeEnv {
  incoming: IncomingMessage;
  outgoing: undefined;
  [ACCEPTED]?: string;
}

export interface SocketUpgrade<E extends SocketEvents> {
  readonly wss: WebSocketServer;
  /**
   * For the route's last handler: accepts the upgrade request for a client at `address`; false when `c` is not a
   * WebSocket upgrade (the route then goes on to the next handler, as without this).
   */
  accept(c: Context, address: string): boolean;
  /** Routes the server's upgrade requests through the app, and upgrades the ones its route accepted. */
  inject(server: Server): void;
  /** The events of every open socket. */
  open(): Iterable<E>;
}

function messageData(data: RawData, isBinary: boolean): string | ArrayBuffer {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  return isBinary
    ? (buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer)
    : buffer.toString("utf-8");
}

/** ws emits `error` (bad frame, frame too large) and then closes: the close is what the handler acts on. */
function onSocketError(): void {}

/**
 * WebSocket upgrades through the Hono app, like @hono/node-ws (the same request, the same answer for a refused
 * upgrade), without what it keeps for a socket's whole life: the request's Hono context, node's IncomingMessage,
 * a WSContext and a closure per event (docs/benchmarks.md). A socket keeps its events object; the listeners are
 * shared.
 */
export function createSocketUpgrade<E extends SocketEvents>(
  app: { request(input: URL, init: RequestInit, env: UpgradeEnv): Response | Promise<Response> },
  options: {
    maxPayload: number;
    onSocket(ws: WebSocket, client: { address: string }): E;
    /** A handler threw: reported, and the socket goes on (as with @hono/node-ws). */
    onError?: (error: unknown) => void;
  },
): SocketUpgrade<E> {
  const onError = options.onError ?? console.error;
  // One of each for every socket of this server: `this` is the socket.
  function onSocketMessage(this: TrackedSocket<E>, data: RawData, isBinary: boolean): void {
    try {
      this[EVENTS]?.onMessage(messageData(data, isBinary));
    } catch (error) {
      onError(error);
    }
  }
  function onSocketClose(this: TrackedSocket<E>, code: number): void {
    try {
      this[EVENTS]?.onClose(code);
    } catch (error) {
      onError(error);
    }
  }

  // permessage-deflate off, as before (ws's default): no zlib state per socket.
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload, perMessageDeflate: false });

  const opened = (ws: WebSocket, address: string): void => {
    try {
      (ws as TrackedSocket<E>)[EVENTS] = options.onSocket(ws, { address });
    } catch (error) {
      onError(error);
    }
    ws.on("message", onSocketMessage);
    ws.on("close", onSocketClose);
    ws.on("error", onSocketError);
  };

  const upgrade = async (request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const headers = new Headers();
    for (const key in request.headers) {
      const value = request.headers[key];
      if (!value) continue;
      headers.append(key, Array.isArray(value) ? (value[0] ?? "") : value);
    }
    const env: UpgradeEnv = { incoming: request, outgoing: undefined };
    const response = await app.request(url, { headers }, env);
    const address = env[ACCEPTED];
    if (address === undefined) {
      socket.end(
        `HTTP/1.1 ${response.status.toString()} ${STATUS_CODES[response.status] ?? ""}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => opened(ws, address));
  };

  return {
    wss,
    accept(c, address) {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return false;
      const env = c.env as UpgradeEnv | undefined;
      if (typeof env !== "object" || env === null) return false;
      env[ACCEPTED] = address;
      return true;
    },
    inject(server) {
      server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
        // Nothing of a bad request may crash the process (a target `new URL` cannot parse, a socket gone mid-way).
        upgrade(request, socket, head).catch(() => socket.destroy());
      });
    },
    *open() {
      for (const ws of wss.clients) {
        const events = (ws as TrackedSocket<E>)[EVENTS];
        if (events) yield events;
      }
    },
  };
}
