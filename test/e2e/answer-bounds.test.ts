import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoTokens } from "../../apps/ai/src/providers/demo";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

/**
 * Every answer has a maximum length and a maximum duration (docs/security.md "Answers"), seen by a client through
 * nginx: the demo model asked for a million tokens, and an answer slower than its time limit.
 */
async function ask(cluster: TestCluster, message: string) {
  const client = new ChatClient(cluster.entryUrl);
  await client.connect();
  const accepted = await client.chat(message);
  const view = await client.done(accepted.streamId);
  const history = await client.history(accepted.conversationId);
  client.close();
  return { view, stored: history.messages.find((m) => m.streamId === accepted.streamId) };
}

const PROMPT = "[demo:tokens=999999] as long as you can";

/** A 1 + 1 cluster behind nginx with the given bounds, for the tests of one describe block. */
function boundedCluster(env: Record<string, string>): () => TestCluster {
  let cluster: TestCluster | undefined;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 1, nginx: true, env });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error("the cluster did not start");
    return cluster;
  };
}

describe("the length bound", () => {
  const clusterOf = boundedCluster({
    DEMO_TOKENS_PER_SECOND: "0",
    MAX_ANSWER_TOKENS: "25",
    MAX_ANSWER_CHARS: "100000",
  });

  it("[demo:tokens=999999] ends at MAX_ANSWER_TOKENS with finishReason length, stored as sent; the node stays healthy", async () => {
    const { view, stored } = await ask(clusterOf(), PROMPT);
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("length");
    // Exactly the first 25 tokens of the demo's answer to this prompt.
    expect(view.text).toBe(demoTokens([{ role: "user", content: PROMPT }], 25).join(""));
    expect(stored?.content).toBe(view.text);
    expect(stored?.status).toBe("complete");
    const health = await fetch(`${clusterOf().runner.topology.aiNodes[0]!.url}/health`);
    expect(health.status).toBe(200);
    // And the next answer is unaffected.
    const next = await ask(clusterOf(), "[demo:tokens=5] short");
    expect(next.view.done?.finishReason).toBe("stop");
  });
});

describe("the duration bound", () => {
  // 10 tokens a second: 100 tokens would take 10 s, the bound stops them at 1.5 s.
  const clusterOf = boundedCluster({ DEMO_TOKENS_PER_SECOND: "10", STREAM_MAX_DURATION_MS: "1500" });

  it("an answer slower than STREAM_MAX_DURATION_MS ends there with finishReason timeout, its text kept", async () => {
    const started = Date.now();
    const { view, stored } = await ask(clusterOf(), "[demo:tokens=100] take your time");
    const elapsed = Date.now() - started;
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("timeout");
    expect(elapsed).toBeLessThan(6000);
    const words = view.text.trim().split(/\s+/).length;
    expect(words).toBeGreaterThan(3);
    expect(words).toBeLessThan(100);
    expect(stored?.content).toBe(view.text);
  });
});
