import { keys } from "@chatgrid/broker";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { waitFor } from "../support/wait";

describe("Redis stopped and restarted under open sockets", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 2, aiNodes: 2, env: { DEMO_TOKENS_PER_SECOND: "20" } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const healthOf = async (client: ChatClient) => (await client.request("GET", "/api/health")).body.status;

  // The second outage outlasts the AI nodes' leases (1.5 s in tests), so streams are also taken over afterwards.
  for (const outageMs of [0, 4000])
    it(`outage ${outageMs ? "longer than a lease" : "short"}: no process exits, health says degraded then ok, streams end, new chats work without restarts`, async () => {
      const clients = [new ChatClient(cluster.gatewayUrl(0)), new ChatClient(cluster.gatewayUrl(1))];
      for (const c of clients) await c.connect();
      const inFlight = await Promise.all(clients.map((c, i) => c.chat(`[demo:tokens=100] during the outage ${i}`)));
      await Promise.all(
        clients.map((c, i) => c.next((f) => f.type === "chunk" && f.streamId === inFlight[i]!.streamId && f.seq >= 3)),
      );

      await cluster.redis.stop();
      for (const c of clients) await waitFor("degraded", async () => (await healthOf(c)) === "degraded", 10_000);
      const refused = await clients[0]!.request("POST", "/api/chat", { message: "while Redis is down" });
      expect(refused.status).toBe(503);
      expect(refused.body.error?.code).toBe("unavailable");
      // Sockets stay open meanwhile: the gateway does not drop its clients because Redis is away.
      expect(clients.every((c) => c.closeCode === undefined)).toBe(true);
      // The outage's length is the scenario here, not a synchronisation.
      if (outageMs) await new Promise((resolve) => setTimeout(resolve, outageMs));

      await cluster.redis.start();
      for (const c of clients) await waitFor("ok again", async () => (await healthOf(c)) === "ok", 15_000);
      expect([...cluster.gateways, ...cluster.ai].every((node) => node.alive)).toBe(true);

      for (const [i, c] of clients.entries()) {
        const view = await c.done(inFlight[i]!.streamId, 30_000);
        expect(view.violations).toEqual([]);
        expect(view.done?.finishReason).toBe("stop");
        const history = await c.history(inFlight[i]!.conversationId);
        expect(history.messages[1]).toMatchObject({ status: "complete", content: view.text });
      }

      // New chats on the same sockets, no restart of anything.
      for (const c of clients) {
        const fresh = await c.chat("[demo:tokens=5] after the outage");
        const view = await c.done(fresh.streamId);
        expect(view.violations).toEqual([]);
        expect(view.done?.finishReason).toBe("stop");
      }
      expect(clients.every((c) => c.closeCode === undefined)).toBe(true);
      for (const c of clients) c.close();
    });
});

describe("Redis back without its data (a restart without persistence, a failover): the AI registry is lost", () => {
  let cluster: TestCluster;
  let redis: Redis;
  // A heartbeat period (the lease) far longer than the test's waits, so only the heartbeat on reconnect can list
  // the node again in time; gateways discover AI nodes through the registry only, as the Docker and AWS stacks do.
  const LEASE_MS = 20_000;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      aiNodes: 1,
      env: { STREAM_LEASE_MS: String(LEASE_MS) },
      gatewayEnv: { AI_SERVICE_URLS: "" },
    });
    redis = new Redis(cluster.redisUrl, cluster.redisOptions);
  });
  afterAll(async () => {
    redis?.disconnect();
    await cluster?.stop();
  });

  it("the AI node announces itself again as soon as its connection is back, and no chat is refused meanwhile", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const before = await client.chat("[demo:tokens=3] before");
    expect((await client.done(before.streamId)).done?.finishReason).toBe("stop");

    // Everything gone, every node's connection dropped: what the nodes see of a Redis restarted empty.
    await redis.flushall();
    expect(await redis.zcard(keys.aiNodes())).toBe(0);
    await redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    await redis.call("CLIENT", "KILL", "TYPE", "pubsub");
    await waitFor(
      "ai-1 listed in the registry again, well within its heartbeat period",
      async () => (await redis.zcard(keys.aiNodes())) === 1,
      LEASE_MS / 4,
    );

    // The client's session went with the data: a new socket, a new session, and chats go through at once.
    client.close();
    const fresh = new ChatClient(cluster.gatewayUrl(0));
    await waitFor(
      "the gateway ready again",
      async () => (await fresh.request("GET", "/api/health")).status === 200,
      10_000,
    );
    await fresh.connect();
    for (let i = 0; i < 3; i++) {
      const accepted = await fresh.chat(`[demo:tokens=3] after ${i}`);
      expect((await fresh.done(accepted.streamId)).done?.finishReason).toBe("stop");
    }
    fresh.close();
  });
});
