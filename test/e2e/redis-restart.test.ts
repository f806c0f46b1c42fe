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
