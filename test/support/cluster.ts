import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterRunner, type SupervisedProcess } from "../../infra/runner";

export interface TestClusterOptions {
  gateways: number;
  aiNodes: number;
  /** Environment for every node (timeouts, TTLs, demo pace). */
  env?: Record<string, string>;
  gatewayEnv?: Record<string, string>;
  aiEnv?: Record<string, string>;
  /** Extra AI URLs in every gateway's static list (e.g. a closed port that refuses connections). */
  extraAiUrls?: string[];
  /** Only the static list: AI nodes do not register, gateways do not discover. */
  staticOnly?: boolean;
  /** Put nginx in front, as `npm start` does. */
  nginx?: boolean;
  /** Run a real Kafka broker and produce events to it. */
  kafka?: boolean;
  /** The built web client for nginx to serve. */
  webRoot?: string;
  /** The runner restarts nodes that die (off by default: failure tests decide what comes back). */
  restart?: boolean;
}

/** Fast defaults for tests: short leases and sweeps so takeovers happen within a couple of seconds. */
export const TEST_ENV: Record<string, string> = {
  STREAM_LEASE_MS: "1500",
  TAKEOVER_SWEEP_MS: "250",
  DISPATCH_DEADLINE_MS: "3000",
  AI_PROBE_INTERVAL_MS: "500",
  AI_NODE_COOLDOWN_MS: "2000",
  DEMO_TOKENS_PER_SECOND: "50",
  DEMO_MAX_TOKENS: "40",
  // Tests run many clients from one address and one session: the abuse limits are tested on their own, with
  // their defaults or small values (test/e2e/abuse.test.ts), so here they are out of the way.
  SESSION_RATE_LIMIT: "100000",
  SESSION_RATE_BURST: "100000",
  SESSION_CREATE_RATE_LIMIT: "100000",
  SESSION_CREATE_RATE_BURST: "100000",
  MESSAGE_CHARS_PER_ADDRESS: "1000000000",
  MESSAGE_CHARS_BURST: "1000000000",
  STREAMS_PER_SESSION: "10000",
  STREAMS_PER_ADDRESS: "10000",
  WS_FRAMES_PER_SECOND: "1000",
  WS_FRAME_BURST: "1000",
  SHUTDOWN_GRACE_MS: "2000",
  LOG_LEVEL: process.env.CHATGRID_TEST_LOG_LEVEL ?? "warn",
};

/**
 * The process runner of `npm start`, on free ports in a temporary state dir, with test timings: the tests drive the
 * same code that runs the product on one machine.
 */
export class TestCluster {
  private constructor(
    readonly runner: ClusterRunner,
    private readonly stateDir: string,
  ) {}

  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-test-"));
    const { DEMO_TOKENS_PER_SECOND, DEMO_MAX_TOKENS, ...rest } = { ...TEST_ENV, ...options.env };
    const runner = await ClusterRunner.start({
      stateDir,
      nginx: options.nginx ?? false,
      restart: options.restart ?? false,
      publicPortsMayBeFree: true,
      topology: {
        gatewayNodes: options.gateways,
        aiNodes: options.aiNodes,
        // Tests open hundreds of sockets from 127.0.0.1; nginx's per-address limit is tested on its own.
        wsConnectionsPerAddress: 10_000,
        provider: {
          kind: "demo",
          demoTokensPerSecond: Number(DEMO_TOKENS_PER_SECOND),
          demoMaxTokens: Number(DEMO_MAX_TOKENS),
        },
        nodeEnv: rest,
      },
      gatewayEnv: { ...(options.staticOnly ? { AI_DISCOVERY: "false" } : {}), ...options.gatewayEnv },
      aiEnv: { ...(options.staticOnly ? { REGISTER: "false" } : {}), ...options.aiEnv },
      extraAiUrls: options.extraAiUrls,
      webRoot: options.webRoot,
      kafka: options.kafka,
    }).catch((error: unknown) => {
      rmSync(stateDir, { recursive: true, force: true });
      throw error;
    });
    return new TestCluster(runner, stateDir);
  }

  get gateways(): SupervisedProcess[] {
    return this.runner.topology.gateways.map((g) => this.runner.node(g.name));
  }

  get ai(): SupervisedProcess[] {
    return this.runner.topology.aiNodes.map((n) => this.runner.node(n.name));
  }

  get redis(): SupervisedProcess {
    return this.runner.node("redis");
  }

  get kafka(): SupervisedProcess {
    return this.runner.node("kafka");
  }

  get kafkaBrokers(): string {
    const brokers = this.runner.kafkaBrokers;
    if (!brokers) throw new Error("this cluster runs no Kafka (start it with kafka: true)");
    return brokers;
  }

  get redisUrl(): string {
    return this.runner.redisUrl;
  }

  /** The cluster's Redis requires a password: `new Redis(cluster.redisUrl, cluster.redisOptions)`. */
  get redisOptions(): { password?: string } {
    return this.runner.redisOptions;
  }

  get redisPassword(): string | undefined {
    return this.runner.redisPassword;
  }

  /** The public entry (nginx) when it runs. */
  get entryUrl(): string {
    return this.runner.urls.chat;
  }

  gatewayUrl(index: number): string {
    return this.runner.gatewayUrl(index);
  }

  wsUrl(index: number): string {
    return `${this.gatewayUrl(index).replace(/^http/, "ws")}/ws/chat`;
  }

  async stop(): Promise<void> {
    await this.runner.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
