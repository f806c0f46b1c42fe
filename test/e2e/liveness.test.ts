import { spawn } from "node:child_process";
import { LiveResponseSchema } from "@chatgrid/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appHealthCheck, appLivenessCheck } from "../../infra/images";
import { ChatClient } from "../support/chat-client";
import { TestCluster } from "../support/cluster";
import { waitFor } from "../support/wait";

/**
 * Liveness (`/live`, what ECS restarts on) against readiness (`/health`, what routes traffic) on real processes: a
 * gateway and an AI node of the runner, then their Redis stopped and started again (docs/operations.md "Liveness
 * and readiness").
 */

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function get(url: string): Promise<Answer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** An image's health check command (infra/images.ts), run as the container would: `node -e …` with its env. */
function runCheck(command: readonly string[], env: Record<string, string>): Promise<number | null> {
  const [node, ...args] = command;
  expect(node).toBe("node");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "", ...env }, stdio: "ignore" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe("/live stays 200 while /health follows Redis", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 1, aiNodes: 1 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("Redis stopped: both stay live and turn unready (AI node degraded, gateway without Redis or a healthy AI node); Redis back: both ready, a chat streams", async () => {
    const gateway = cluster.runner.topology.gateways[0]!;
    const ai = cluster.runner.topology.aiNodes[0]!;
    const internal = `http://${gateway.host}:${gateway.metricsPort}`;
    const urls = {
      gatewayLive: `${internal}/live`,
      gatewayHealth: `${internal}/health`,
      aiLive: `${ai.url}/live`,
      aiHealth: `${ai.url}/health`,
    };
    const envs = { gateway: { METRICS_PORT: String(gateway.metricsPort) }, ai: { PORT: String(ai.port) } };
    /** Every liveness answer seen during the test: each must be a 200 with the node's name. */
    const liveAnswers: Answer[] = [];
    const snapshot = async () => {
      const [gatewayLive, aiLive, gatewayHealth, aiHealth] = await Promise.all(
        [urls.gatewayLive, urls.aiLive, urls.gatewayHealth, urls.aiHealth].map(get),
      );
      liveAnswers.push(gatewayLive!, aiLive!);
      return { gatewayHealth: gatewayHealth!, aiHealth: aiHealth! };
    };
    const expectAllLive = () => {
      expect(liveAnswers.length).toBeGreaterThan(0);
      for (const answer of liveAnswers) {
        expect(answer.status).toBe(200);
        expect(LiveResponseSchema.parse(answer.body).status).toBe("live");
      }
      expect(new Set(liveAnswers.map((a) => a.body.node))).toEqual(new Set([gateway.name, ai.name]));
    };

    const pids = [cluster.gateways[0]!.pid, cluster.ai[0]!.pid];
    expect(pids.every((pid) => typeof pid === "number")).toBe(true);

    // Ready to begin with.
    const before = await snapshot();
    expect(before.aiHealth).toMatchObject({ status: 200, body: { status: "ok", redis: "up" } });
    expect(before.gatewayHealth).toMatchObject({
      status: 200,
      body: { status: "ok", redis: "up", aiNodes: [{ name: ai.name, healthy: true }] },
    });
    expect(await runCheck(appLivenessCheck.ai, envs.ai)).toBe(0);
    expect(await runCheck(appLivenessCheck.gateway, envs.gateway)).toBe(0);
    expect(await runCheck(appHealthCheck.ai, envs.ai)).toBe(0);
    expect(await runCheck(appHealthCheck.gateway, envs.gateway)).toBe(0);

    await cluster.redis.stop();
    // The gateway is unready as soon as its own Redis is gone; its view of the AI node follows at the next probe.
    const aiNodeDown = (body: Record<string, unknown>) =>
      Array.isArray(body.aiNodes) && body.aiNodes.every((n: { healthy?: unknown }) => n.healthy === false);
    const down = await waitFor(
      "both readiness checks at 503, the AI node unhealthy in the gateway's view",
      async () => {
        const s = await snapshot();
        return s.aiHealth.status === 503 && s.gatewayHealth.status === 503 && aiNodeDown(s.gatewayHealth.body)
          ? s
          : undefined;
      },
      15_000,
      100,
    );
    expect(down.aiHealth.body).toMatchObject({ status: "degraded", redis: "down", node: ai.name });
    expect(down.gatewayHealth.body).toMatchObject({
      status: "degraded",
      redis: "down",
      node: gateway.name,
      aiNodes: [{ name: ai.name, healthy: false }],
    });
    // The images' commands agree: readiness fails (Docker marks them unhealthy), liveness passes (ECS keeps them).
    expect(await runCheck(appHealthCheck.ai, envs.ai)).toBe(1);
    expect(await runCheck(appHealthCheck.gateway, envs.gateway)).toBe(1);
    expect(await runCheck(appLivenessCheck.ai, envs.ai)).toBe(0);
    expect(await runCheck(appLivenessCheck.gateway, envs.gateway)).toBe(0);
    // Still unready after the commands ran: the passes were not a recovery in between.
    const stillDown = await snapshot();
    expect(stillDown.aiHealth.status).toBe(503);
    expect(stillDown.gatewayHealth.status).toBe(503);
    expectAllLive();
    expect(cluster.gateways[0]!.alive && cluster.ai[0]!.alive).toBe(true);

    await cluster.redis.start();
    const up = await waitFor(
      "both readiness checks at 200",
      async () => {
        const s = await snapshot();
        return s.aiHealth.status === 200 && s.gatewayHealth.status === 200 ? s : undefined;
      },
      20_000,
      100,
    );
    expect(up.aiHealth.body).toMatchObject({ status: "ok", redis: "up" });
    expect(up.gatewayHealth.body).toMatchObject({
      status: "ok",
      redis: "up",
      aiNodes: [{ name: ai.name, healthy: true }],
    });
    expect(await runCheck(appHealthCheck.ai, envs.ai)).toBe(0);
    expect(await runCheck(appHealthCheck.gateway, envs.gateway)).toBe(0);
    expectAllLive();
    // Neither process was replaced: the same ones recovered by themselves.
    expect([cluster.gateways[0]!.pid, cluster.ai[0]!.pid]).toEqual(pids);

    const client = new ChatClient(cluster.gatewayUrl(0));
    await client.connect();
    const accepted = await client.chat("[demo:tokens=5] after the outage");
    const view = await client.done(accepted.streamId);
    expect(view.violations).toEqual([]);
    expect(view.done?.finishReason).toBe("stop");
    client.close();
  });
});
