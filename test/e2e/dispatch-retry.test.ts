import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../infra/runner";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

describe("AI load balancer retries", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it("with one AI node refusing connections, every chat still succeeds", async () => {
    const refusing = `ai-dead=http://127.0.0.1:${await freePort()}`;
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 2, staticOnly: true, extraAiUrls: [refusing] });
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const streams = [];
    for (let i = 0; i < 12; i++) streams.push(await client.chat(`[demo:tokens=2] retry ${i}`));
    const nodes = new Set<string | undefined>();
    for (const s of streams) {
      const view = await client.done(s.streamId);
      expect(view.done?.finishReason).toBe("stop");
      nodes.add(view.start?.aiNode);
    }
    expect(nodes).toEqual(new Set(["ai-1", "ai-2"]));
    const health = await client.request("GET", "/api/health");
    expect(health.status).toBe(200);
    // The public view counts AI nodes; names and URLs are on the internal port only.
    expect(health.body.aiNodes).toEqual({ healthy: 2, total: 3 });
    const gateway = cluster.runner.topology.gateways[0]!;
    const internal = await fetch(`http://${gateway.host}:${gateway.metricsPort}/health`);
    expect(internal.status).toBe(200);
    const full = (await internal.json()) as { aiNodes: { name: string; healthy: boolean }[] };
    expect(full.aiNodes).toContainEqual(expect.objectContaining({ name: "ai-dead", healthy: false }));
    client.close();
  });

  it("with every AI node refusing, 503 no_ai_node and nothing is left behind", async () => {
    const urls = [`ai-1=http://127.0.0.1:${await freePort()}`, `ai-2=http://127.0.0.1:${await freePort()}`];
    // The cluster's own AI node is left out of the gateway's list: only the refusing URLs remain.
    cluster = await TestCluster.start({
      gateways: 1,
      aiNodes: 1,
      staticOnly: true,
      gatewayEnv: { AI_SERVICE_URLS: "" },
      extraAiUrls: urls,
    });
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.createSession();
    const response = await client.request("POST", "/api/chat", { message: "anyone there?", clientMessageId: "c1" });
    expect(response.status).toBe(503);
    expect(response.body.error?.code).toBe("no_ai_node");
    expect((await client.request("GET", "/api/conversations")).body).toEqual({ conversations: [] });
    const health = await client.request("GET", "/api/health");
    expect(health.status).toBe(503);
    // The idempotency key was released: the same clientMessageId may be retried.
    const retry = await client.request("POST", "/api/chat", { message: "anyone there?", clientMessageId: "c1" });
    expect(retry.status).toBe(503);
  });
});
