import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";

describe("two gateways on one Redis", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      aiNodes: 2,
      env: { DEMO_TOKENS_PER_SECOND: "40", DEMO_MAX_TOKENS: "60" },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("a stream dispatched through gateway A reaches the session's sockets on gateway B (and A)", async () => {
    const onB = new ChatClient(cluster.gatewayUrl(1));
    await onB.connect();
    expect(onB.node).toBe("gateway-2");
    const onA = new ChatClient(cluster.gatewayUrl(0));
    onA.token = onB.token;
    await onA.connect();
    expect(onA.node).toBe("gateway-1");
    expect(onA.sessionId).toBe(onB.sessionId);

    const rest = new ChatClient(cluster.gatewayUrl(0));
    rest.token = onB.token;
    const accepted = await rest.chat("from A to B");
    const [viewB, viewA] = await Promise.all([onB.done(accepted.streamId), onA.done(accepted.streamId)]);
    expect(viewB.violations).toEqual([]);
    expect(viewA.violations).toEqual([]);
    expect(viewB.done?.finishReason).toBe("stop");
    expect(viewB.text).toBe(viewA.text);
    expect((await rest.history(accepted.conversationId)).messages[1]?.content).toBe(viewB.text);

    // Another session's socket on the same gateway sees nothing of it.
    const stranger = new ChatClient(cluster.gatewayUrl(1));
    await stranger.connect();
    const other = await rest.chat("second message, the stranger must not see it", {
      conversationId: accepted.conversationId,
    });
    await onB.done(other.streamId);
    expect(stranger.frames.filter((f) => "streamId" in f)).toEqual([]);
    for (const c of [onA, onB, stranger]) c.close();
  });

  it("chats are spread round-robin over the AI nodes", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const streams = [];
    for (let i = 0; i < 4; i++) streams.push(await client.chat(`[demo:tokens=3] message ${i}`));
    const nodes = await Promise.all(streams.map(async (s) => (await client.done(s.streamId)).start?.aiNode));
    expect(new Set(nodes)).toEqual(new Set(["ai-1", "ai-2"]));
    client.close();
  });

  it("cancel through the gateway that did not dispatch: finishReason cancelled, and the text stops", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=400] a long answer to cancel");
    await client.next((f) => f.type === "chunk" && f.streamId === accepted.streamId && f.seq >= 3);
    const viaB = new ChatClient(cluster.gatewayUrl(1));
    viaB.token = client.token;
    const response = await viaB.request("POST", "/api/cancel", { streamId: accepted.streamId });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ streamId: accepted.streamId, cancelled: true });
    const view = await client.done(accepted.streamId, 5000);
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("cancelled");
    // Cancelled early: far fewer than 400 tokens were produced (the provider loop was aborted).
    expect(view.lastSeq).toBeLessThan(100);
    const history = await client.history(accepted.conversationId);
    expect(history.messages[1]).toMatchObject({ status: "cancelled", content: view.text });

    const again = await viaB.request("POST", "/api/cancel", { streamId: accepted.streamId });
    expect(again.body).toEqual({ streamId: accepted.streamId, cancelled: false });
    client.close();
  });

  it("the same clientMessageId twice returns the same 202 body and starts one stream", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.createSession();
    const first = await client.request("POST", "/api/chat", {
      message: "[demo:tokens=2] once",
      clientMessageId: "retry-1",
    });
    const viaB = new ChatClient(cluster.gatewayUrl(1));
    viaB.token = client.token;
    const second = await viaB.request("POST", "/api/chat", {
      message: "[demo:tokens=2] once",
      clientMessageId: "retry-1",
    });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body).toEqual(first.body);
    const history = await client.history(first.body.conversationId as string);
    expect(history.messages).toHaveLength(2);
  });
});
