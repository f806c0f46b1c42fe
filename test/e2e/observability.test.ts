import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { waitFor } from "../support/wait";

describe("metrics, logs and the slow-consumer bound", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      aiNodes: 1,
      // Debug level: the strictest check that no token or message text is logged at any level we ship.
      // The answer bounds raised: the slow-consumer test needs an answer larger than the kernel's socket buffers.
      env: {
        LOG_LEVEL: "debug",
        WS_SEND_BUFFER_BYTES: "65536",
        DEMO_TOKENS_PER_SECOND: "0",
        MAX_ANSWER_TOKENS: "1000000",
        MAX_ANSWER_CHARS: "20000000",
      },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("gateway and AI node expose chatgrid_ metrics that count what happened", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=30] count me");
    await client.done(accepted.streamId);
    client.close();
    const gateway = cluster.runner.topology.gateways[0]!;
    const gatewayMetrics = await (await fetch(`http://${gateway.host}:${gateway.metricsPort}/metrics`)).text();
    const value = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? Number.NaN);
    expect(value(gatewayMetrics, /^chatgrid_chunks_delivered_total (\d+)/m)).toBeGreaterThanOrEqual(3);
    expect(value(gatewayMetrics, /^chatgrid_dispatches_total\{result="accepted"\} (\d+)/m)).toBe(1);
    expect(value(gatewayMetrics, /^chatgrid_redis_up (\d+)/m)).toBe(1);
    expect(gatewayMetrics).toMatch(/^chatgrid_rest_requests_total\{route="\/api\/chat",status="202"\} 1$/m);
    expect(gatewayMetrics).toMatch(/^chatgrid_ai_node_healthy\{node="ai-1"\} 1$/m);
    const ai = cluster.runner.topology.aiNodes[0]!;
    const aiMetrics = await (await fetch(`${ai.url}/metrics`)).text();
    expect(value(aiMetrics, /^chatgrid_ai_streams_finished_total\{outcome="stop"\} (\d+)/m)).toBe(1);
    expect(value(aiMetrics, /^chatgrid_ai_chunks_published_total (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(aiMetrics).toMatch(/^chatgrid_ai_time_to_first_chunk_seconds_count 1$/m);
  });

  it("a socket that stops reading is closed with 4409 past its send bound, and resumes to the exact answer", async () => {
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const raw = client.ws as WebSocket & { _socket: { pause(): void; resume(): void } };
    // Stop reading: the kernel buffers (about 4 MiB on loopback) fill, then the gateway's send buffer passes 64 KiB.
    raw._socket.pause();
    const accepted = await client.chat("[demo:tokens=999999] flood a reader that does not read");
    const gatewayMetrics = `http://127.0.0.1:${cluster.runner.topology.gateways[0]!.metricsPort}/metrics`;
    await waitFor("the gateway to close the slow socket", async () =>
      /^chatgrid_slow_consumer_closes_total [1-9]/m.test(await (await fetch(gatewayMetrics)).text()),
    );
    // The close frame queues behind what was already buffered: a client that reads again gets it, with 4409.
    raw._socket.resume();
    expect(await client.closed()).toBe(4409);
    const fresh = new ChatClient(cluster.gatewayUrl(0));
    fresh.token = client.token;
    await fresh.connect({ resume: [{ streamId: accepted.streamId }] });
    const view = await fresh.done(accepted.streamId, 60_000);
    expect(view.violations).toEqual([]);
    expect((await fresh.history(accepted.conversationId)).messages[1]?.content).toBe(view.text);
    fresh.close();
    const metrics = await (
      await fetch(`http://127.0.0.1:${cluster.runner.topology.gateways[0]!.metricsPort}/metrics`)
    ).text();
    expect(metrics).toMatch(/^chatgrid_slow_consumer_closes_total [1-9]/m);
  });

  it("logs are JSON lines with the node name and never contain a token or the message text", async () => {
    const secretText = "my very private question about zebras";
    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat(`[demo:tokens=3] ${secretText}`);
    await client.done(accepted.streamId);
    client.close();
    const logDir = join(cluster.runner.options.stateDir, "logs");
    let lines = 0;
    for (const file of readdirSync(logDir).filter((f) => f.startsWith("gateway") || f.startsWith("ai"))) {
      const text = readFileSync(join(logDir, file), "utf8");
      expect(text).not.toContain(client.token!);
      expect(text).not.toContain("zebras");
      for (const line of text.split("\n").filter(Boolean)) {
        const entry = JSON.parse(line) as { node?: string };
        expect(entry.node).toBe(file.replace(".log", ""));
        lines++;
      }
    }
    expect(lines).toBeGreaterThan(5);
  });
});
