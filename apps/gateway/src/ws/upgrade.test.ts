import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect as connectTcp } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createSocketUpgrade, type SocketEvents } from "./upgrade";

class RecordingEvents implements SocketEvents {
  readonly messages: (string | ArrayBuffer)[] = [];
  closeCode: number | undefined;
  constructor(
    readonly ws: WebSocket,
    readonly address: string,
  ) {}
  onMessage(data: string | ArrayBuffer): void {
    this.messages.push(data);
  }
  onClose(code?: number): void {
    this.closeCode = code;
  }
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function start(): Promise<{ url: string; opened: RecordingEvents[]; sockets: ReturnType<typeof setup> }> {
  const opened: RecordingEvents[] = [];
  const sockets = setup(opened);
  server = createServer(getRequestListener(sockets.app.fetch));
  sockets.upgrade.inject(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, opened, sockets };
}

function setup(opened: RecordingEvents[]) {
  const app = new Hono();
  const upgrade = createSocketUpgrade(app, {
    maxPayload: 1024,
    onSocket: (ws, client) => {
      const events = new RecordingEvents(ws, client.address);
      opened.push(events);
      return events;
    },
  });
  app.get(
    "/ws",
    async (c, next) => {
      if (c.req.header("origin") === "http://evil.example") return c.json({ error: "forbidden" }, 403);
      await next();
    },
    async (c, next) => {
      if (upgrade.accept(c, "203.0.113.7")) return new Response();
      await next();
    },
  );
  app.notFound((c) => c.json({ error: "not found" }, 404));
  return { app, upgrade };
}

function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

const until = async (test: () => boolean) => {
  for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(test()).toBe(true);
};

describe("socket upgrades through the Hono app", () => {
  it("an accepted upgrade gets its events: the address, text as strings, binary as ArrayBuffer, the close code", async () => {
    const { url, opened, sockets } = await start();
    const ws = await connect(`${url}/ws`);
    await until(() => opened.length === 1);
    const events = opened[0]!;
    expect(events.address).toBe("203.0.113.7");
    expect([...sockets.upgrade.open()]).toEqual([events]);
    ws.send('{"type":"ping"}');
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await until(() => events.messages.length === 2);
    expect(events.messages[0]).toBe('{"type":"ping"}');
    expect(events.messages[1]).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(events.messages[1] as ArrayBuffer)]).toEqual([1, 2, 3]);
    ws.close(4000, "bye");
    await until(() => events.closeCode !== undefined);
    expect(events.closeCode).toBe(4000);
    expect([...sockets.upgrade.open()]).toEqual([]);
  });

  it("a frame over maxPayload closes the socket with 1009, and the socket's close still comes", async () => {
    const { url, opened } = await start();
    const ws = await connect(`${url}/ws`);
    await until(() => opened.length === 1);
    ws.send("x".repeat(2048));
    const [code] = (await once(ws, "close")) as [number];
    expect(code).toBe(1009);
    // The server stops reading at the bad frame, so it does not see the client's close frame: 1006 here.
    await until(() => opened[0]!.closeCode !== undefined);
    expect(opened[0]!.closeCode).toBe(1006);
  });

  it("a refused upgrade gets the route's status and no socket; an unknown path gets 404", async () => {
    const { url, opened } = await start();
    await expect(connect(`${url}/ws`, { origin: "http://evil.example" })).rejects.toThrow(/403/);
    await expect(connect(`${url}/elsewhere`)).rejects.toThrow(/404/);
    expect(opened).toEqual([]);
  });

  it("a plain GET of the route is no upgrade: the route goes on to the next handler", async () => {
    const { url, opened } = await start();
    const response = await fetch(`${url.replace("ws:", "http:")}/ws`);
    expect(response.status).toBe(404);
    expect(opened).toEqual([]);
  });

  it("an upgrade whose target is no URL is hung up, and the process and server go on", async () => {
    const { url, opened } = await start();
    const { port } = new URL(url);
    const raw = connectTcp(Number(port), "127.0.0.1");
    raw.write(
      "GET http://[bad/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    raw.resume();
    await once(raw, "close");
    expect(opened).toEqual([]);
    const ws = await connect(`${url}/ws`);
    await until(() => opened.length === 1);
    ws.close();
  });
});
