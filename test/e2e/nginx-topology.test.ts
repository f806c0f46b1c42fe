import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WS_PROXY_BUFFER } from "../../infra/nginx/render";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

/** nginx's ip_hash keys on the first three octets of an IPv4 address: 127.0.N.1 are distinct clients to it. */
const clientAddress = (n: number) => `127.0.${n}.1`;

/** A raw upgrade request to `/ws/chat` on a gateway itself; resolves with the response header nginx would read. */
function upgradeResponseHeader(gatewayUrl: string, origin: string | undefined): Promise<string> {
  const { hostname, port } = new URL(gatewayUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          `${origin ? `Origin: ${origin}\r\n` : ""}X-Real-IP: 127.0.0.9\r\nX-Forwarded-For: 127.0.0.9\r\n\r\n`,
      );
    });
    let received = "";
    socket.on("data", (data) => {
      received += data.toString("latin1");
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.destroy();
      resolve(received.slice(0, end + 4));
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`closed before a whole response header: ${JSON.stringify(received)}`)));
    socket.setTimeout(5_000, () => socket.destroy(new Error("no response header within 5 s")));
  });
}

describe("3 gateways + 3 AI nodes behind the rendered nginx", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 3, aiNodes: 3, nginx: true, env: { DEMO_MAX_TOKENS: "5" } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("30 clients from distinct addresses are spread over the gateways, each sticks to one for REST and WebSocket", async () => {
    const placements = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const client = new ChatClient(cluster.entryUrl, clientAddress(i + 10));
        const welcome = await client.connect();
        const restNodes = new Set<string>();
        for (let k = 0; k < 3; k++) restNodes.add((await client.request("GET", "/api/health")).body.node as string);
        const accepted = await client.chat("which nodes serve me?");
        const view = await client.done(accepted.streamId);
        client.close();
        return { ws: welcome.node, rest: [...restNodes], aiNode: view.start?.aiNode, violations: view.violations };
      }),
    );
    for (const p of placements) {
      expect(p.rest).toEqual([p.ws]);
      expect(p.violations).toEqual([]);
    }
    const perGateway = new Map<string, number>();
    for (const p of placements) perGateway.set(p.ws, (perGateway.get(p.ws) ?? 0) + 1);
    expect([...perGateway.keys()].sort()).toEqual(["gateway-1", "gateway-2", "gateway-3"]);
    // Each gateway hands its chats round-robin to the AI nodes: all three serve.
    expect(new Set(placements.map((p) => p.aiNode))).toEqual(new Set(["ai-1", "ai-2", "ai-3"]));
    console.log(`ip_hash spread of 30 clients: ${JSON.stringify(Object.fromEntries(perGateway))}`);
  });

  it("serves /healthz, stub_status, JSON errors for nginx's own limits, and the protocol through the entry", async () => {
    const health = await fetch(`${cluster.entryUrl}/healthz`);
    expect(await health.text()).toBe("ok\n");
    const stub = await fetch(cluster.runner.urls.metrics);
    expect(await stub.text()).toContain("Active connections");
    const client = new ChatClient(cluster.entryUrl, clientAddress(200));
    await client.createSession();
    const tooLarge = await client.request("POST", "/api/chat", { message: "z".repeat(80_000) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error?.code).toBe("payload_too_large");
  });

  it("the gateway's response header on /ws/ (its 101, a refusal) fits in half of nginx's WebSocket buffer", async () => {
    // Above proxy_buffer_size nginx would answer 502 in the gateway's place (docs/operations.md).
    const accepted = await upgradeResponseHeader(cluster.gatewayUrl(0), undefined);
    const refused = await upgradeResponseHeader(cluster.gatewayUrl(0), "https://elsewhere.example");
    expect(accepted).toMatch(/^HTTP\/1\.1 101 /);
    expect(refused).toMatch(/^HTTP\/1\.1 403 /);
    for (const header of [accepted, refused]) expect(header.length).toBeLessThan(WS_PROXY_BUFFER.bytes / 2);
  });

  it("nginx runs the configuration the renderer produced for this topology", () => {
    const conf = readFileSync(join(cluster.runner.options.stateDir, "nginx", "nginx.conf"), "utf8");
    expect(conf).toBe(cluster.runner.renderNginx());
    for (const gateway of cluster.runner.topology.gateways)
      expect(conf).toContain(`server ${gateway.host}:${gateway.port} `);
  });
});

describe("scaling is configuration: 5 gateways + 2 AI nodes", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 5, aiNodes: 2, nginx: true, env: { DEMO_MAX_TOKENS: "5" } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("renders an upstream of five and serves chats through all of them with both AI nodes", async () => {
    const conf = readFileSync(join(cluster.runner.options.stateDir, "nginx", "nginx.conf"), "utf8");
    expect(conf.match(/^\s+server 127\.0\.0\.1:\d+ max_fails/gm)).toHaveLength(5);
    const results = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const client = new ChatClient(cluster.entryUrl, clientAddress(i + 50));
        const welcome = await client.connect();
        const view = await client.done((await client.chat(`scale ${i}`)).streamId);
        client.close();
        return { gateway: welcome.node, ai: view.start?.aiNode, done: view.done?.finishReason };
      }),
    );
    expect(new Set(results.map((r) => r.gateway)).size).toBe(5);
    expect(new Set(results.map((r) => r.ai))).toEqual(new Set(["ai-1", "ai-2"]));
    expect(results.every((r) => r.done === "stop")).toBe(true);
  });
});
