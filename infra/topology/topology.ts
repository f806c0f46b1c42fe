import type { TopologyConfig } from "./config";

export type NodeRole = "gateway" | "ai";

/** One gateway or AI node as every target sees it: its name, where it listens, and its whole environment. */
export interface NodeSpec {
  name: string;
  role: NodeRole;
  /** The address other nodes and nginx use to reach it. */
  host: string;
  /** Its main port: public REST/WS for a gateway, the internal API for an AI node. */
  port: number;
  /** Internal /metrics and /health port (gateway); the same as `port` for an AI node. */
  metricsPort: number;
  url: string;
  env: Record<string, string>;
}

/**
 * Where nodes run: the process target puts everything on loopback with allocated ports, the container targets give
 * each node its own host name and the same well-known ports.
 */
export interface Placement {
  /** The address a node binds to. */
  bindHost: string;
  hostOf(name: string): string;
  gatewayPort(index: number): number;
  gatewayMetricsPort(index: number): number;
  aiPort(index: number): number;
  /** Redis for every node; absent where the target hands REDIS_URL over as a secret instead (AWS: docs/aws.md). */
  redisUrl?: string;
  /** Kafka bootstrap servers (`host:port,…`), when the target runs Kafka and it is enabled. */
  kafkaBrokers?: string;
  /** Origins allowed to open sockets (the web client's). */
  allowedOrigins: string[];
  /**
   * How gateways learn the AI nodes. `list` (the default): the topology's AI nodes in AI_SERVICE_URLS, plus any that
   * heartbeat in Redis. `registry`: only the signed Redis membership (AI_DISCOVERY), so a change of `aiNodes` changes
   * no gateway's environment and no gateway is restarted by it (docs/architecture.md "AI discovery").
   */
  aiDiscovery?: "list" | "registry";
}

export interface Topology {
  config: TopologyConfig;
  gateways: NodeSpec[];
  aiNodes: NodeSpec[];
  redisUrl?: string;
  kafkaBrokers?: string;
}

export const gatewayName = (index: number): string => `gateway-${index + 1}`;
export const aiName = (index: number): string => `ai-${index + 1}`;

/** Every node produces events to the same topic when Kafka is on; no brokers means events are off. */
function kafkaEnv(config: TopologyConfig, placement: Placement): Record<string, string> {
  if (!config.kafka.enabled || !placement.kafkaBrokers) return {};
  return {
    KAFKA_BROKERS: placement.kafkaBrokers,
    KAFKA_TOPIC: config.kafka.topic,
    KAFKA_PARTITIONS: String(config.kafka.partitions),
  };
}

function redisEnv(placement: Placement): Record<string, string> {
  return placement.redisUrl ? { REDIS_URL: placement.redisUrl } : {};
}

function providerEnv(config: TopologyConfig): Record<string, string> {
  const { provider } = config;
  const env: Record<string, string> = {
    PROVIDER: provider.kind,
    DEMO_TOKENS_PER_SECOND: String(provider.demoTokensPerSecond),
    DEMO_MAX_TOKENS: String(provider.demoMaxTokens),
  };
  if (provider.openaiBaseUrl) env.OPENAI_BASE_URL = provider.openaiBaseUrl;
  if (provider.openaiModel) env.OPENAI_MODEL = provider.openaiModel;
  return env;
}

/** Derives every node, its address and its environment from the configuration and a placement. */
export function deriveTopology(config: TopologyConfig, placement: Placement): Topology {
  const aiNodes: NodeSpec[] = Array.from({ length: config.aiNodes }, (_, index) => {
    const name = aiName(index);
    const host = placement.hostOf(name);
    const port = placement.aiPort(index);
    const url = `http://${host}:${port}`;
    return {
      name,
      role: "ai",
      host,
      port,
      metricsPort: port,
      url,
      env: {
        NODE_NAME: name,
        HOST: placement.bindHost,
        PORT: String(port),
        PUBLIC_URL: url,
        ...redisEnv(placement),
        ...kafkaEnv(config, placement),
        ...providerEnv(config),
        ...config.nodeEnv,
      },
    };
  });
  const aiList: Record<string, string> =
    placement.aiDiscovery === "registry"
      ? { AI_DISCOVERY: "true" }
      : { AI_SERVICE_URLS: aiNodes.map((node) => `${node.name}=${node.url}`).join(",") };
  const gateways: NodeSpec[] = Array.from({ length: config.gatewayNodes }, (_, index) => {
    const name = gatewayName(index);
    const host = placement.hostOf(name);
    const port = placement.gatewayPort(index);
    const metricsPort = placement.gatewayMetricsPort(index);
    return {
      name,
      role: "gateway",
      host,
      port,
      metricsPort,
      url: `http://${host}:${port}`,
      env: {
        NODE_NAME: name,
        HOST: placement.bindHost,
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        ...redisEnv(placement),
        ...aiList,
        ALLOWED_ORIGINS: placement.allowedOrigins.join(","),
        ...kafkaEnv(config, placement),
        ...config.nodeEnv,
      },
    };
  });
  return {
    config,
    gateways,
    aiNodes,
    redisUrl: placement.redisUrl,
    kafkaBrokers: kafkaEnv(config, placement).KAFKA_BROKERS,
  };
}
