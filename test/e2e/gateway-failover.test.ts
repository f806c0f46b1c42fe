import { keys } from "@chatgrid/broker";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { waitFor } from "../support/wait";

/** Connects `count` clients to gateway 0 and starts one long stream each; resolves once every stream has chunks. */
async function startStreams(cluster: TestCluster, count: number, tokens: number) {
  const clients = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const client = new ChatClient(cluster.gatewayUrl(0));
      await client.connect();
      const accepted = await client.chat(`[demo:tokens=${tokens}] failover stream ${i}`);
      return { client, accepted };
    }),
  );
  await Promise.all(
    clients.map(({ client, accepted }) =>
      client.next((f) => f.type === "chunk" && f.streamId === accepted.streamId && f.seq >= 3),
    ),
  );
  return clients;
}

describe("SIGKILL the gateway holding the sockets mid-stream", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 2, aiNodes: 2, env: { DEMO_TOKENS_PER_SECOND: "30" } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  for (const count of [1, 50]) {
    it(`${count} stream(s): resumed on the other gateway with afterSeq, text equals the stored answer byte for byte`, async () => {
      if (!cluster.gateways[0]!.alive) await cluster.gateways[0]!.start();
      const clients = await startStreams(cluster, count, 90);
      await cluster.gateways[0]!.kill("SIGKILL");
      await Promise.all(clients.map(({ client }) => client.closed()));

      const resumedFrom = new Map<string, number>();
      await Promise.all(
        clients.map(async ({ client, accepted }) => {
          resumedFrom.set(accepted.streamId, client.view(accepted.streamId).lastSeq);
          client.baseUrl = cluster.gatewayUrl(1);
          const welcome = await client.connect({ resume: client.resumePoints() });
          expect(welcome.node).toBe("gateway-2");
          expect(welcome.sessionId).toBe(client.sessionId);
        }),
      );
      for (const { client, accepted } of clients) {
        const view = await client.done(accepted.streamId);
        expect(view.violations).toEqual([]);
        expect(view.done?.finishReason).toBe("stop");
        expect(resumedFrom.get(accepted.streamId)).toBeLessThan(view.lastSeq);
        const history = await client.history(accepted.conversationId);
        expect(view.text).toBe(history.messages[1]?.content);
        expect(view.text.split(" ").length).toBeGreaterThanOrEqual(90);
        client.close();
      }
      await cluster.gateways[0]!.start();
    });
  }

  it("a resume after done replays exactly the events after afterSeq", async () => {
    if (!cluster.gateways[0]!.alive) await cluster.gateways[0]!.start();
    const client = new ChatClient(cluster.gatewayUrl(1));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=12] finished before resume");
    const full = await client.done(accepted.streamId);
    const late = new ChatClient(cluster.gatewayUrl(0));
    late.token = client.token;
    late.seedFrom(client, accepted.streamId, 5);
    await late.connect({ resume: [{ streamId: accepted.streamId, afterSeq: 5 }] });
    const view = await late.done(accepted.streamId);
    const seqs = late.frames.filter((f) => "seq" in f).map((f) => (f as { seq: number }).seq);
    expect(seqs[0]).toBe(6);
    expect(seqs.at(-1)).toBe(full.lastSeq);
    expect(view.violations).toEqual([]);
    expect(view.text).toBe(full.text);
    // Resume from the beginning gives the whole stream, start included.
    const fromStart = new ChatClient(cluster.gatewayUrl(0));
    fromStart.token = client.token;
    await fromStart.connect({ resume: [{ streamId: accepted.streamId }] });
    const whole = await fromStart.done(accepted.streamId);
    expect(whole.violations).toEqual([]);
    expect(whole.start?.seq).toBe(0);
    expect(whole.text).toBe(full.text);
    for (const c of [client, late, fromStart]) c.close();
  });
});

describe("resume after the per-chunk history expired", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 1, env: { HISTORY_TTL_MS: "1000" } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("sends a snapshot with the whole text and the last seq", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=10] expire my history");
    const full = await client.done(accepted.streamId);
    client.close();
    const redis = new Redis(cluster.redisUrl, cluster.redisOptions);
    await waitFor(
      "history expired",
      async () => (await redis.exists(keys.streamEvents(accepted.streamId))) === 0,
      10_000,
      100,
    );
    redis.disconnect();

    const late = new ChatClient(cluster.gatewayUrl(0));
    late.token = client.token;
    await late.connect({ resume: [{ streamId: accepted.streamId, afterSeq: 2 }] });
    const view = await late.done(accepted.streamId);
    // The snapshot carries the whole text one seq short of done; the stored done frame follows, exactly as sent live.
    expect(late.frames.filter((f) => "streamId" in f)).toEqual([
      { type: "snapshot", streamId: accepted.streamId, seq: full.lastSeq - 1, content: full.text },
      full.done,
    ]);
    expect(view.text).toBe(full.text);
    late.close();
  });
});
