import { z } from "zod";

const port = z.number().int().min(1).max(65_535);

/**
 * The typed configuration of a chatgrid deployment, shared by every target (processes, Docker, AWS).
 * Node counts are configuration: scaling is changing a number here, nothing else.
 */
export const TopologyConfigSchema = z.object({
  gatewayNodes: z.number().int().min(1, "at least 1 gateway node").max(64, "at most 64 gateway nodes").default(3),
  aiNodes: z.number().int().min(1, "at least 1 AI node").max(64, "at most 64 AI nodes").default(3),
  /** Public HTTP/WebSocket entry (nginx). */
  httpPort: port.default(8080),
  /** The web client. */
  webPort: port.default(3000),
  /** nginx stub_status. */
  metricsPort: port.default(8090),
  provider: z
    .object({
      kind: z.enum(["demo", "openai"]).default("demo"),
      demoTokensPerSecond: z.number().int().min(0).default(20),
      demoMaxTokens: z.number().int().min(1).default(60),
      openaiBaseUrl: z.url().optional(),
      openaiModel: z.string().optional(),
    })
    .prefault({}),
  /** Events to Kafka (gateways and AI nodes produce to one topic; key = sessionId). */
  kafka: z
    .object({
      enabled: z.boolean().default(true),
      topic: z.string().min(1).default("chatgrid.events"),
      partitions: z.number().int().min(1).default(3),
    })
    .prefault({}),
  /** Requests per second per client address on /api/ (nginx limit_req), with a burst. */
  apiRatePerSecond: z.number().int().min(1).default(20),
  apiBurst: z.number().int().min(0).default(40),
  /** Open WebSockets per client address at nginx (`limit_conn` on /ws/); one more is refused with 429. */
  wsConnectionsPerAddress: z.number().int().min(1).max(100_000).default(50),
  /**
   * Client requests nginx serves at once, all addresses together (a WebSocket is one for its whole life); one more
   * is refused with JSON, and nginx's worker_connections are sized from it (docs/operations.md).
   */
  maxClientConnections: z.number().int().min(1).max(500_000).default(10_000),
  /** nginx client_header_timeout, client_body_timeout and send_timeout: how long a client may stall. */
  clientTimeoutSeconds: z.number().int().min(1).max(300).default(10),
  /** Extra environment for every gateway and AI node (e.g. timeouts in tests). */
  nodeEnv: z.record(z.string(), z.string()).default({}),
});

export type TopologyConfigInput = z.input<typeof TopologyConfigSchema>;
export type TopologyConfig = z.output<typeof TopologyConfigSchema>;

/** Validates a configuration; the error names each key and what it expects. */
export function parseTopologyConfig(input: unknown): TopologyConfig {
  const result = TopologyConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `  ${issue.path.join(".") || "(config)"}: ${issue.message}`);
  throw new Error(`invalid chatgrid topology configuration:\n${problems.join("\n")}`);
}
