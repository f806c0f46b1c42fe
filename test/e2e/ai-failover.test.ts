import { LIMITS } from "@chatgrid/protocol";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { demoTokens } from "../../apps/ai/src/providers/demo";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

/** Starts `count` streams and waits until each has a few chunks; returns them with the client. */
async function runningStreams(client: ChatClient, count: number, tokens: number) {
  const streams = [];
  for (let i = 0; i < count; i++) streams.push(await client.chat(`[demo:tokens=${tokens}] takeover ${i}`));
  await Promise.all(
    streams.map((s) => client.next((f) => f.type === "chunk" && f.streamId === s.streamId && f.seq >= 3)),
  );
  return streams;
}

describe("SIGKILL an AI node mid-stream", () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  for (const seamless of [true, false]) {
    it(`every stream still ends with done on another node (${seamless ? "seamless continuation" : "reset and start over"})`, async () => {
      cluster = await TestCluster.start({
        gateways: 2,
        aiNodes: 2,
        env: { DEMO_TOKENS_PER_SECOND: "30", DEMO_SEAMLESS_TAKEOVER: String(seamless) },
      });
      const client = new ChatClient(cluster.gatewayUrl(0));
      await client.connect();
      const streams = await runningStreams(client, 6, 120);
      const onAi1 = streams.filter((s) => client.view(s.streamId).start?.aiNode === "ai-1");
      expect(onAi1.length).toBeGreaterThan(0);
      const killedAt = Date.now();
      await cluster.ai[0]!.kill("SIGKILL");
      for (const s of streams) {
        const view = await client.done(s.streamId, LIMITS.streamFailureBoundMs);
        expect(view.violations).toEqual([]);
        expect(view.done?.finishReason).toBe("stop");
        const history = await client.history(s.conversationId);
        expect(history.messages[1]).toMatchObject({ status: "complete", content: view.text });
        const wasOnAi1 = onAi1.includes(s);
        // done names the node that finished: another one after a takeover.
        if (wasOnAi1) expect(["ai-2"]).toContain(view.done?.aiNode);
        else expect(view.done?.aiNode).toBe(view.start?.aiNode);
        // A seamless takeover never voids text; a restart voids it exactly once.
        expect(view.resets).toBe(wasOnAi1 && !seamless ? 1 : 0);
        // The demo text is deterministic: whichever way the takeover went, the answer is the one the prompt gives.
        const prompt = `[demo:tokens=120] takeover ${streams.indexOf(s)}`;
        expect(view.text).toBe(demoTokens([{ role: "user", content: prompt }], 120).join(""));
      }
      expect(Date.now() - killedAt).toBeLessThan(LIMITS.streamFailureBoundMs);
      client.close();
    });
  }

  it("with no AI node left, the stream ends with done + stream_failed within the bound", async () => {
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 1, staticOnly: true });
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const [stream] = await runningStreams(client, 1, 500);
    const killedAt = Date.now();
    await cluster.ai[0]!.kill("SIGKILL");
    const view = await client.done(stream!.streamId, LIMITS.streamFailureBoundMs);
    expect(Date.now() - killedAt).toBeLessThan(LIMITS.streamFailureBoundMs);
    expect(view.violations).toEqual([]);
    expect(view.done).toMatchObject({ finishReason: "error", error: { code: "stream_failed" } });
    const history = await client.history(stream!.conversationId);
    expect(history.messages[1]?.status).toBe("error");
    client.close();
  });
});
