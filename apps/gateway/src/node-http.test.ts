import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createLogger, SIGNATURE_HEADER, verifyRequest } from "@chatgrid/broker";
import { afterEach, describe, expect, it } from "vitest";
import { AiBalancer } from "./ai-balancer";
import { createGatewayMetrics } from "./metrics";
import { MAX_REPLY_BYTES, NodeCallTimeout, type NodeTransport, nodeHttpTransport } from "./node-http";

const SECRET = "s".repeat(32);

/** A real HTTP server for one test: counts connections and requests, answers as `handle` says. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse, body: string, n: number) => void) {
  const sockets = new Set<Socket>();
  let connections = 0;
  let open = 0;
  let maxOpen = 0;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => handle(req, res, body, ++requests));
  });
  server.on("connection", (socket) => {
    connections++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    sockets.add(socket);
    socket.on("close", () => {
      open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url,
    stats: () => ({ connections, maxOpen, requests }),
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function transport(options = { maxSocketsPerNode: 64, maxFreeSocketsPerNode: 16 }): NodeTransport {
  const t = nodeHttpTransport(options);
  cleanups.push(() => t.close());
  return t;
}

describe("nodeHttpTransport (node:http, keep-alive agent)", () => {
  it("posts the body with its headers and gives the status and the reply's text", async () => {
    const seen: { method?: string; type?: string; length?: string; body?: string }[] = [];
    const node = await serve((req, res, body) => {
      seen.push({ method: req.method, type: req.headers["content-type"], length: req.headers["content-length"], body });
      res.writeHead(202, { "content-type": "application/json" }).end('{"status":"claimed"}');
    });
    const reply = await transport().call(`${node.url}/v1/streams`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"streamId":"st_é"}',
      timeoutMs: 1000,
    });
    expect(reply).toEqual({ status: 202, text: '{"status":"claimed"}' });
    expect(seen).toEqual([
      {
        method: "POST",
        type: "application/json",
        length: String(Buffer.byteLength('{"streamId":"st_é"}')),
        body: '{"streamId":"st_é"}',
      },
    ]);
  });

  it("reuses one connection for sequential calls (keep-alive)", async () => {
    const node = await serve((_req, res) => res.writeHead(202).end("{}"));
    const t = transport();
    for (let i = 0; i < 20; i++) {
      expect((await t.call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 1000 })).status).toBe(
        202,
      );
    }
    expect(node.stats()).toMatchObject({ requests: 20, connections: 1 });
  });

  it("opens at most maxSocketsPerNode connections; calls beyond wait for one and all complete", async () => {
    const node = await serve((_req, res) => setTimeout(() => res.writeHead(202).end("{}"), 20));
    const t = transport({ maxSocketsPerNode: 3, maxFreeSocketsPerNode: 3 });
    const replies = await Promise.all(
      Array.from({ length: 12 }, () =>
        t.call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 2000 }),
      ),
    );
    expect(replies.every((r) => r.status === 202)).toBe(true);
    expect(node.stats().maxOpen).toBeLessThanOrEqual(3);
    expect(node.stats().connections).toBeLessThanOrEqual(3);
  });

  it("fails with a timeout when no reply comes in time, and the wait counts towards it", async () => {
    const node = await serve(() => undefined); // never answers
    const started = performance.now();
    await expect(
      transport().call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 60 }),
    ).rejects.toBeInstanceOf(NodeCallTimeout);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(50);
    expect(elapsed).toBeLessThan(1000);
  });

  it("a refused connection is an error (ECONNREFUSED)", async () => {
    const node = await serve(() => undefined);
    const url = node.url;
    await cleanups.splice(0).reverse()[0]?.(); // the server is closed: its port refuses
    await expect(
      transport().call(`${url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 1000 }),
    ).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  it("a kept connection the node closed meanwhile: the call goes out once more on a fresh one", async () => {
    let drop = false;
    const node = await serve((req, res) => {
      if (drop) {
        drop = false;
        req.socket.destroy(); // as a node's idle timeout racing the next request: no reply on the old connection
        return;
      }
      res.writeHead(202).end("{}");
    });
    const t = transport();
    expect((await t.call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 1000 })).status).toBe(202);
    drop = true;
    expect((await t.call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 1000 })).status).toBe(202);
    expect(node.stats()).toMatchObject({ requests: 3, connections: 2 });
  });

  it("keeps at most MAX_REPLY_BYTES of a reply; readBody false keeps none", async () => {
    const node = await serve((_req, res) => res.writeHead(500).end("x".repeat(MAX_REPLY_BYTES * 2)));
    const t = transport();
    const reply = await t.call(`${node.url}/v1/streams`, { method: "POST", body: "{}", timeoutMs: 1000 });
    expect(reply.status).toBe(500);
    expect(reply.text.length).toBe(MAX_REPLY_BYTES);
    expect(await t.call(`${node.url}/health`, { method: "GET", timeoutMs: 1000, readBody: false })).toEqual({
      status: 500,
      text: "",
    });
  });
});

describe("AiBalancer over node:http (no injected fetch)", () => {
  function balancerFor(nodes: { name: string; url: string }[], dispatchTimeoutMs = 1000) {
    const balancer = new AiBalancer({
      clusterSecret: SECRET,
      staticNodes: nodes,
      dispatchTimeoutMs,
      cooldownMs: 60_000,
      probeIntervalMs: 60_000,
      log: createLogger("test", "silent"),
      metrics: createGatewayMetrics(),
    });
    cleanups.push(() => balancer.close());
    return balancer;
  }

  it("signs every dispatch; a 5xx, a timeout and a refused node each move on to the next node", async () => {
    const verified: string[] = [];
    const accepting = await serve((req, res, body) => {
      verified.push(
        verifyRequest(SECRET, req.headers[SIGNATURE_HEADER] as string | undefined, "POST", "/v1/streams", body),
      );
      res.writeHead(202, { "content-type": "application/json" }).end('{"status":"claimed"}');
    });
    const failing = await serve((_req, res) => res.writeHead(500).end("boom"));
    const silent = await serve(() => undefined);
    const gone = await serve(() => undefined);
    const goneUrl = gone.url;
    await cleanups.pop()?.(); // closed: refuses connections
    const balancer = balancerFor(
      [
        { name: "ai-500", url: failing.url },
        { name: "ai-silent", url: silent.url },
        { name: "ai-gone", url: goneUrl },
        { name: "ai-ok", url: accepting.url },
      ],
      80,
    );
    expect(await balancer.dispatch({ streamId: "st_1", attempt: 1 })).toEqual({ ok: true, node: "ai-ok", tried: 4 });
    expect(verified).toEqual(["ok"]);
    expect(balancer.list().map((n) => [n.name, n.healthy])).toEqual([
      ["ai-500", false],
      ["ai-silent", false],
      ["ai-gone", false],
      ["ai-ok", true],
    ]);
  });

  it("409 counts as accepted; a 404 stream_unknown stops; probes mark nodes up and down", async () => {
    const conflict = await serve((req, res) => {
      if (req.url === "/health") return res.writeHead(200).end('{"status":"ok"}');
      res.writeHead(409).end('{"status":"already_claimed"}');
    });
    const unknown = await serve((req, res) => {
      if (req.url === "/health") return res.writeHead(503).end("{}");
      res.writeHead(404).end('{"error":{"code":"stream_unknown","message":"no such stream"}}');
    });
    const b1 = balancerFor([{ name: "ai-1", url: conflict.url }]);
    expect(await b1.dispatch({ streamId: "st_2", attempt: 2 })).toEqual({ ok: true, node: "ai-1", tried: 1 });
    const b2 = balancerFor([
      { name: "ai-unknown", url: unknown.url },
      { name: "ai-conflict", url: conflict.url },
    ]);
    expect(await b2.dispatch({ streamId: "st_3", attempt: 1 })).toEqual({ ok: false, tried: 1 });
    await b2.refresh();
    expect(b2.list().map((n) => [n.name, n.healthy])).toEqual([
      ["ai-unknown", false],
      ["ai-conflict", true],
    ]);
  });
});
