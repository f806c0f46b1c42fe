import { freePort } from "./free-port";
import { NodeProcess } from "./node-process";
import { RedisServer } from "./redis-server";

export interface ClusterOptions {
  gateways: number;
  aiNodes: number;
  /** Environment for every node (timeouts, TTLs, demo pace). */
  env?: Record<string, string>;
  gatewayEnv?: Record<string, string>;
  aiEnv?: Record<string, string>;
  /** Extra AI URLs in every gateway's static list (e.g. a closed port that refuses connections). */
  extraAiUrls?: string[];
  /** Use only the static list (no registration in Redis). */
  staticOnly?: boolean;
}

/** Fast defaults for tests: short leases and sweeps so takeovers happen within a couple of seconds. */
const TEST_ENV: Record<string, string> = {
  STREAM_LEASE_MS: "1500",
  TAKEOVER_SWEEP_MS: "250",
  DISPATCH_DEADLINE_MS: "3000",
  AI_PROBE_INTERVAL_MS: "500",
  AI_NODE_COOLDOWN_MS: "2000",
  DEMO_TOKENS_PER_SECOND: "50",
  DEMO_MAX_TOKENS: "40",
  SESSION_RATE_LIMIT: "100000",
  WS_FRAMES_PER_SECOND: "1000",
  WS_FRAME_BURST: "1000",
  SHUTDOWN_GRACE_MS: "2000",
};

/** Redis, M AI nodes and N gateways as real processes on free loopback ports. */
export class TestCluster {
  private constructor(
    readonly redis: RedisServer,
    readonly ai: NodeProcess[],
    readonly gateways: NodeProcess[],
    readonly gatewayPorts: number[],
  ) {}

  static async start(options: ClusterOptions): Promise<TestCluster> {
    const redis = await RedisServer.start();
    const common = { ...TEST_ENV, REDIS_URL: redis.url, ...options.env };
    const ai: NodeProcess[] = [];
    const aiUrls: string[] = [];
    for (let i = 1; i <= options.aiNodes; i++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      aiUrls.push(`ai-${i}=${url}`);
      ai.push(
        new NodeProcess(
          `ai-${i}`,
          "ai",
          {
            ...common,
            NODE_NAME: `ai-${i}`,
            PORT: String(port),
            REGISTER: options.staticOnly ? "false" : "true",
            ...options.aiEnv,
          },
          url,
        ),
      );
    }
    const staticUrls = [...aiUrls, ...(options.extraAiUrls ?? [])].join(",");
    const gateways: NodeProcess[] = [];
    const gatewayPorts: number[] = [];
    for (let i = 1; i <= options.gateways; i++) {
      const [port, metricsPort] = [await freePort(), await freePort()];
      gatewayPorts.push(port);
      gateways.push(
        new NodeProcess(
          `gateway-${i}`,
          "gateway",
          {
            ...common,
            NODE_NAME: `gateway-${i}`,
            PORT: String(port),
            METRICS_PORT: String(metricsPort),
            AI_SERVICE_URLS: staticUrls,
            AI_DISCOVERY: options.staticOnly ? "false" : "true",
            ...options.gatewayEnv,
          },
          `http://127.0.0.1:${metricsPort}`,
        ),
      );
    }
    const cluster = new TestCluster(redis, ai, gateways, gatewayPorts);
    try {
      await Promise.all(ai.map((node) => node.start()));
      await Promise.all(gateways.map((node) => node.start()));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  gatewayUrl(index: number): string {
    return `http://127.0.0.1:${this.gatewayPorts[index]}`;
  }

  wsUrl(index: number): string {
    return `ws://127.0.0.1:${this.gatewayPorts[index]}/ws/chat`;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.gateways, ...this.ai].map((node) => node.kill("SIGKILL")));
    await this.redis.destroy();
  }
}
