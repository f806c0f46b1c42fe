import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { type ClientStream, expectExactAnswers, reconnectAndResume, waitForProgress } from "../support/streams";
import { waitFor } from "../support/wait";

/**
 * Chaos through nginx with the runner's supervision on, as `npm start` runs it: each failure is repeated, and the
 * runner must bring every killed node back.
 */
describe("chaos through nginx (3 gateways, 3 AI nodes, supervision on)", () => {
  let cluster: TestCluster;
  let subnet = 100;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 3,
      aiNodes: 3,
      nginx: true,
      restart: true,
      env: { DEMO_TOKENS_PER_SECOND: "25", DEMO_MAX_TOKENS: "100" },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /**
   * `count` clients on one gateway, each with one running stream. Clients of one /24 share a gateway under ip_hash,
   * except while nginx still counts a recently killed gateway as failed; then the subnet is topped up until `count`
   * sit on the same one, and the others are let go.
   */
  async function clientsOnOneGateway(count: number, prompt: string) {
    subnet++;
    const byGateway = new Map<string, ClientStream[]>();
    let next = 1;
    for (;;) {
      const batch = await Promise.all(
        Array.from({ length: count }, async () => {
          const client = new ChatClient(cluster.entryUrl, `127.0.${subnet}.${next++}`);
          await client.connect();
          return client;
        }),
      );
      for (const client of batch)
        byGateway.set(client.node!, [
          ...(byGateway.get(client.node!) ?? []),
          { client, streamId: "", conversationId: "" },
        ]);
      const [gateway, members] = [...byGateway.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
      if (members.length < count) continue;
      for (const [other, rest] of byGateway) if (other !== gateway) for (const r of rest) r.client.close();
      for (const r of members.slice(count)) r.client.close();
      const chosen = members.slice(0, count);
      const streams = await Promise.all(
        chosen.map(async ({ client }, i) => ({ client, ...(await client.chat(`${prompt} ${subnet}.${i}`)) })),
      );
      return { clients: chosen.map((c) => c.client), streams, gateway };
    }
  }

  for (let round = 1; round <= 3; round++) {
    it(`round ${round}: SIGKILL the gateway holding 100 live streams; every client resumes on another, exact answers`, async () => {
      const { clients, streams, gateway } = await clientsOnOneGateway(100, "gateway chaos");
      await waitForProgress(streams);
      const node = cluster.runner.node(gateway);
      const restartsBefore = node.restarts;
      const back = node.nextHealthy();
      await node.kill("SIGKILL");
      await Promise.all(clients.map((c) => c.closed()));
      await reconnectAndResume(clients);
      await expectExactAnswers(streams);
      await back;
      expect(node.restarts).toBe(restartsBefore + 1);
      for (const c of clients) c.close();
    });
  }

  for (let round = 1; round <= 3; round++) {
    it(`round ${round}: SIGKILL an AI node mid-stream; every stream ends with done`, async () => {
      const { clients, streams } = await clientsOnOneGateway(15, "ai chaos");
      await waitForProgress(streams);
      const victim = `ai-${round}`;
      expect(streams.some((s) => s.client.view(s.streamId).start?.aiNode === victim)).toBe(true);
      const node = cluster.runner.node(victim);
      const back = node.nextHealthy();
      await node.kill("SIGKILL");
      await expectExactAnswers(streams);
      await back;
      for (const c of clients) c.close();
    });
  }

  for (let round = 1; round <= 2; round++) {
    it(`round ${round}: restart Redis under live streams; the system recovers without restarting any node`, async () => {
      const { clients, streams } = await clientsOnOneGateway(10, "redis chaos");
      await waitForProgress(streams);
      const nodes = [...cluster.gateways, ...cluster.ai];
      const restartsBefore = nodes.map((n) => n.restarts);
      const redis = cluster.redis;
      const back = redis.nextHealthy();
      await redis.kill("SIGTERM");
      await back;
      await expectExactAnswers(streams);
      const fresh = await clients[0]!.chat("after the Redis restart");
      await expectExactAnswers([{ client: clients[0]!, ...fresh }]);
      expect(nodes.map((n) => n.restarts)).toEqual(restartsBefore);
      expect(nodes.every((n) => n.alive)).toBe(true);
      for (const c of clients) c.close();
    });
  }

  for (let round = 1; round <= 3; round++) {
    it(`round ${round}: SIGTERM a gateway; its clients get 1012, resume, nothing lost; the runner restarts it`, async () => {
      const { clients, streams, gateway } = await clientsOnOneGateway(20, "graceful");
      await waitForProgress(streams);
      const node = cluster.runner.node(gateway);
      const back = node.nextHealthy();
      await node.kill("SIGTERM");
      expect(await Promise.all(clients.map((c) => c.closed()))).toEqual(clients.map(() => 1012));
      await reconnectAndResume(clients);
      await expectExactAnswers(streams);
      await back;
      await waitFor(
        "gateway serving again",
        async () =>
          (await fetch(`${cluster.runner.topology.gateways.find((g) => g.name === gateway)!.url}/api/health`)).ok,
      );
      for (const c of clients) c.close();
    });
  }
});
