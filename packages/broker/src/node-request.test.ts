import { once } from "node:events";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type BodyText, readBodyText, readIncomingText, requestHeader } from "./node-request";

/** A real Node server whose handler reads each body with `readIncomingText` and reports what it got. */
async function serverReading(maxBytes: number) {
  const results: BodyText[] = [];
  const waiters: ((result: BodyText) => void)[] = [];
  const arrivals: (() => void)[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    for (const arrived of arrivals.splice(0)) arrived();
    const result = await readIncomingText(req, maxBytes);
    results.push(result);
    for (const waiter of waiters.splice(0)) waiter(result);
    res.writeHead(result.ok ? 200 : 413).end(result.ok ? `${result.text.length}` : result.reason);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const next = () => new Promise<BodyText>((resolve) => waiters.push(resolve));
  /** Resolves when the next request's headers have reached the handler. */
  const arrival = () => new Promise<void>((resolve) => arrivals.push(resolve));
  return { server, port, results, next, arrival };
}

/** Sends a POST: `parts` written one by one (chunked when no length is given); resolves with status and body. */
function post(port: number, parts: string[], headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    for (const part of parts) req.write(part);
    req.end();
  });
}

let servers: Server[] = [];
afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  servers = [];
});

describe("readIncomingText on a real Node server", () => {
  it("reads a body with a Content-Length, and a chunked one, whole (multi-byte UTF-8 split across writes)", async () => {
    const { server, port, results } = await serverReading(64);
    servers.push(server);
    const body = '{"streamId":"st_é","attempt":1}';
    expect(await post(port, [body], { "content-length": String(Buffer.byteLength(body)) })).toEqual({
      status: 200,
      body: String(body.length),
    });
    const bytes = Buffer.from("héllo wörld");
    const split = [bytes.subarray(0, 2), bytes.subarray(2, 9), bytes.subarray(9)].map((b) => b.toString("latin1"));
    // latin1 round-trips the raw bytes; the server must join them before decoding.
    const chunked = await new Promise<string>((resolve) => {
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/", agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(String(res.statusCode)));
      });
      for (const part of split) req.write(Buffer.from(part, "latin1"));
      req.end();
    });
    expect(chunked).toBe("200");
    expect(results).toEqual([
      { ok: true, text: body },
      { ok: true, text: "héllo wörld" },
    ]);
  });

  it("refuses a declared length over the bound before reading, and a chunked body once it passes the bound", async () => {
    const { server, port, results } = await serverReading(16);
    servers.push(server);
    const declared = await post(port, ["x".repeat(17)], { "content-length": "17" });
    expect(declared).toEqual({ status: 413, body: "too_large" });
    // Chunked: no length to refuse up front; 3 writes of 10 bytes pass 16 on the second.
    const chunked = await post(port, ["a".repeat(10), "b".repeat(10), "c".repeat(10)]);
    expect(chunked).toEqual({ status: 413, body: "too_large" });
    // At the bound exactly is fine.
    expect(await post(port, ["y".repeat(16)])).toEqual({ status: 200, body: "16" });
    expect(results.map((r) => r.ok)).toEqual([false, false, true]);
  });

  it("a client that goes away mid-body gives incomplete, and the server goes on", async () => {
    const { server, port, next, arrival } = await serverReading(1024);
    servers.push(server);
    const result = next();
    const arrived = arrival();
    const req = request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/",
      agent: false,
      headers: { "content-length": "100" },
    });
    req.on("error", () => undefined);
    req.write("only ten b");
    await arrived; // the handler is reading (90 bytes short of the declared 100) when the client cuts
    req.destroy();
    expect(await result).toEqual({ ok: false, reason: "incomplete" });
    expect(await post(port, ["fine"])).toEqual({ status: 200, body: "4" });
  });
});

describe("readBodyText without a Node request (app.request in tests)", () => {
  const source = (body: string, headers: Record<string, string> = {}) => {
    const request = new Request("http://x/", { method: "POST", body });
    return {
      env: undefined,
      req: { header: (name: string) => headers[name], arrayBuffer: () => request.arrayBuffer() },
    };
  };

  it("reads the web Request's body within the bound, and refuses one over it by its length or its bytes", async () => {
    expect(await readBodyText(source("héllo"), 6)).toEqual({ ok: true, text: "héllo" });
    expect(await readBodyText(source("héllo"), 5)).toEqual({ ok: false, reason: "too_large" });
    expect(await readBodyText(source("x", { "content-length": "99" }), 10)).toEqual({ ok: false, reason: "too_large" });
  });
});

describe("requestHeader", () => {
  it("reads the Node request's headers (repeated ones joined), and the web request's without one", async () => {
    const seen: (string | undefined)[][] = [];
    const server = createServer((req, res) => {
      const c = { env: { incoming: req }, req: { header: () => "not used" } };
      seen.push([requestHeader(c, "x-one"), requestHeader(c, "x-many"), requestHeader(c, "x-none")]);
      res.end();
    });
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      const req = request({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      });
      req.setHeader("X-One", "1");
      req.setHeader("X-Many", ["a", "b"]);
      req.end();
    });
    expect(seen).toEqual([["1", "a, b", undefined]]);
    const web = { env: undefined, req: { header: (name: string) => (name === "x-one" ? "web" : undefined) } };
    expect(requestHeader(web, "x-one")).toBe("web");
  });
});
