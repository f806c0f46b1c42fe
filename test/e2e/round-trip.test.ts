import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

describe("protocol round trip (1 gateway, 1 AI node, real Redis)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 1 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("session, chat, chunks 1..n then done, and history equals the streamed text", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    const welcome = await client.connect();
    expect(welcome.node).toBe("gateway-1");
    expect(welcome.token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const accepted = await client.chat("Hello there, tell me about chatgrid");
    const view = await client.done(accepted.streamId);
    expect(view.violations).toEqual([]);
    expect(view.start?.aiNode).toBe("ai-1");
    expect(view.start?.conversationId).toBe(accepted.conversationId);
    expect(view.start?.messageId).toBe(accepted.messageId);
    expect(view.done?.finishReason).toBe("stop");
    expect(view.done?.usage?.completionTokens).toBe(40);
    const chunkSeqs = client.frames.filter((f) => f.type === "chunk").map((f) => (f as { seq: number }).seq);
    expect(chunkSeqs).toEqual(chunkSeqs.map((_, i) => i + 1));
    expect(view.text).toContain("(demo model)");

    const history = await client.history(accepted.conversationId);
    expect(history.messages.map((m) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "complete"],
    ]);
    expect(history.messages[0]?.content).toBe("Hello there, tell me about chatgrid");
    expect(history.messages[1]?.content).toBe(view.text);
    expect(history.messages[1]?.streamId).toBe(accepted.streamId);

    const conversations = await client.request("GET", "/api/conversations");
    expect(conversations.status).toBe(200);
    expect(conversations.body.conversations).toMatchObject([
      { id: accepted.conversationId, title: "Hello there, tell me about chatgrid" },
    ]);
    client.close();
  });

  it("a provider failure ends with done + error, and history keeps the status and the error", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat("[demo:error=4] fail after four tokens");
    const view = await client.done(accepted.streamId);
    expect(view.violations).toEqual([]);
    expect(view.done).toMatchObject({ finishReason: "error", error: { code: "provider_error" }, aiNode: "ai-1" });
    const answer = (await client.history(accepted.conversationId)).messages[1];
    expect(answer).toMatchObject({ status: "error", content: view.text, error: view.done?.error });
    expect(view.text.length).toBeGreaterThan(0);
    client.close();
  });
});
