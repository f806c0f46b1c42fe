import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { type ImagePins, images, PINNED_IMAGE, PINNED_IMAGE_EXPECTED, PULLED_IMAGES } from "../images";
import { DEFAULT_REDIS_MAXMEMORY, REDIS_MEMORY_EXPECTED, REDIS_MEMORY_SIZE } from "../runner/redis-conf";
import { parseTopologyConfig, type TopologyConfig, TopologyConfigSchema } from "../topology";

/** The Pulumi config namespace: `pulumi config set chatgrid:gatewayNodes 5`. */
export const CONFIG_NAMESPACE = "chatgrid";

/** Host ports of Redis and Kafka when `debugPorts` is on (the seed's). */
export const DEBUG_PORTS = { redis: 6379, kafka: 9092 } as const;

/** The typed configuration of a Docker stack. */
export interface StackConfig {
  topology: TopologyConfig;
  /** Publish Redis (6379) and Kafka (9092) on the host, for redis-cli and Kafka tools. Off by default. */
  debugPorts: boolean;
  /** The second, explicit setting debug ports need before they follow a `publishAddress` other than loopback. */
  debugPortsOnAllInterfaces: boolean;
  /** Host address the published ports bind to. */
  publishAddress: string;
  /** Redis `maxmemory` (expiring keys are evicted first); default 256mb. */
  redisMaxMemory: string;
  /** Given to AI nodes as OPENAI_API_KEY; set it with `pulumi config set --secret`. */
  openaiApiKey?: string;
  /**
   * Every pulled image and base image of the stack: the pins of infra/images.ts with the `chatgrid:images`
   * replacements over them (a registry mirror, an air-gapped registry).
   */
  images: ImagePins;
  /** The platform the app images are built for: `chatgrid:platform`, or the host's (hostPlatform). */
  platform: DockerPlatform;
}

/** The platforms the stack builds its app images for. */
export const DOCKER_PLATFORMS = ["linux/amd64", "linux/arm64"] as const;
export type DockerPlatform = (typeof DOCKER_PLATFORMS)[number];

/**
 * The default build platform: this machine's architecture (Node's `process.arch`), so a build never runs under
 * emulation by accident. `undefined` on any other architecture (chatgrid:platform must then be set).
 */
export function hostPlatform(arch: string = process.arch): DockerPlatform | undefined {
  return arch === "x64" ? "linux/amd64" : arch === "arm64" ? "linux/arm64" : undefined;
}

const topology = TopologyConfigSchema.shape;
const provider = topology.provider.unwrap().shape;
const kafka = topology.kafka.unwrap().shape;

/** A whole number written as text (Pulumi hands every value over as a string), then the topology's own rule. */
const int = (rule: z.ZodNumber) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, "expected a whole number")
    .transform(Number)
    .pipe(rule);
const bool = z
  .string()
  .trim()
  .refine((v) => v === "true" || v === "false", "expected true or false")
  .transform((v) => v === "true");
const json = <T>(rule: z.ZodType<T>) =>
  z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "expected a JSON object (pulumi config set --path or a YAML map)" });
        return z.NEVER;
      }
    })
    .pipe(rule);

/**
 * `chatgrid:images`: a map of replacements for the pins of infra/images.ts, any subset of their keys, each a pinned
 * reference from any registry. Each wrong entry is its own problem (`chatgrid:images.<key>: …`).
 */
const imagesOverride = z.record(z.string(), z.unknown()).superRefine((map, ctx) => {
  for (const [key, value] of Object.entries(map)) {
    if (!(PULLED_IMAGES as string[]).includes(key)) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `not an image of the stack (known: ${PULLED_IMAGES.join(", ")})`,
      });
    } else if (typeof value !== "string" || !PINNED_IMAGE.test(value)) {
      ctx.addIssue({ code: "custom", path: [key], message: `expected a pinned reference ${PINNED_IMAGE_EXPECTED}` });
    }
  }
}) as z.ZodType<Partial<Record<keyof ImagePins, string>>>;

/** Every key of the `chatgrid:` namespace, with what it expects. Unknown keys are errors (a typo never passes). */
const StackConfigSchema = z.object({
  gatewayNodes: int(topology.gatewayNodes.unwrap()).optional(),
  aiNodes: int(topology.aiNodes.unwrap()).optional(),
  httpPort: int(topology.httpPort.unwrap()).optional(),
  webPort: int(topology.webPort.unwrap()).optional(),
  metricsPort: int(topology.metricsPort.unwrap()).optional(),
  debugPorts: bool.optional(),
  debugPortsOnAllInterfaces: bool.optional(),
  redisMaxMemory: z.string().trim().regex(REDIS_MEMORY_SIZE, REDIS_MEMORY_EXPECTED).optional(),
  publishAddress: z.ipv4("expected an IPv4 address such as 127.0.0.1 (this machine only) or 0.0.0.0").optional(),
  provider: provider.kind.optional(),
  demoTokensPerSecond: int(provider.demoTokensPerSecond.unwrap()).optional(),
  demoMaxTokens: int(provider.demoMaxTokens.unwrap()).optional(),
  openaiBaseUrl: provider.openaiBaseUrl,
  openaiModel: provider.openaiModel,
  openaiApiKey: z
    .string()
    .min(1, "expected the API key (pulumi config set --secret chatgrid:openaiApiKey …)")
    .optional(),
  kafka: bool.optional(),
  kafkaTopic: kafka.topic.optional(),
  kafkaPartitions: int(kafka.partitions.unwrap()).optional(),
  apiRatePerSecond: int(topology.apiRatePerSecond.unwrap()).optional(),
  apiBurst: int(topology.apiBurst.unwrap()).optional(),
  wsConnectionsPerAddress: int(topology.wsConnectionsPerAddress.unwrap()).optional(),
  maxClientConnections: int(topology.maxClientConnections.unwrap()).optional(),
  clientTimeoutSeconds: int(topology.clientTimeoutSeconds.unwrap()).optional(),
  nodeEnv: json(topology.nodeEnv.unwrap()).optional(),
  images: json(imagesOverride).optional(),
  platform: z
    .string()
    .trim()
    .refine(
      (v) => (DOCKER_PLATFORMS as readonly string[]).includes(v),
      `expected one of ${DOCKER_PLATFORMS.join(", ")}`,
    )
    .transform((v) => v as DockerPlatform)
    .optional(),
});

export const STACK_CONFIG_KEYS = Object.keys(StackConfigSchema.shape);

/** A value as the error messages show it: JSON (strings quoted, numbers bare), or its text when JSON has none. */
const quote = (value: unknown) => JSON.stringify(value) ?? String(value);

/** The value a problem is about: the setting's, or for a JSON setting the entry at `path` within it when it has one. */
function offending(text: string | undefined, path: PropertyKey[]): { value: unknown } | undefined {
  if (text === undefined) return undefined;
  if (path.length === 0) return { value: text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { value: text };
  }
  for (const step of path) {
    if (value === null || typeof value !== "object" || !(String(step) in value)) return { value: text };
    value = (value as Record<string, unknown>)[String(step)];
  }
  return { value };
}

/**
 * Validates the raw `chatgrid:` values (keys without the namespace, values as Pulumi gives them: strings). Every
 * problem is reported at once, each on a line naming the key and what it expects, e.g.
 * `  chatgrid:gatewayNodes: at least 1 gateway node (got "0")`.
 */
export function parseStackConfig(raw: Record<string, string | undefined>): StackConfig {
  const problems: string[] = [];
  const unknown = Object.keys(raw).filter((key) => !STACK_CONFIG_KEYS.includes(key));
  for (const key of unknown) {
    problems.push(`${CONFIG_NAMESPACE}:${key}: not a chatgrid setting (known: ${STACK_CONFIG_KEYS.join(", ")})`);
  }
  const known = Object.fromEntries(Object.entries(raw).filter(([key, v]) => !unknown.includes(key) && v !== undefined));
  const parsed = StackConfigSchema.safeParse(known);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? "(config)");
      const rest = issue.path.slice(1).join(".");
      const found = offending(known[key], issue.path.slice(1));
      const got = found ? ` (got ${quote(found.value)})` : "";
      problems.push(`${CONFIG_NAMESPACE}:${key}${rest ? `.${rest}` : ""}: ${issue.message}${got}`);
    }
  }
  if (problems.length === 0 && parsed.success) {
    const c = parsed.data;
    const debugPorts = c.debugPorts ?? false;
    // Any address but loopback (0.0.0.0, a LAN or public address) puts Redis and Kafka within others' reach.
    const address = c.publishAddress ?? "127.0.0.1";
    if (debugPorts && !address.startsWith("127.") && c.debugPortsOnAllInterfaces !== true) {
      const where = address === "0.0.0.0" ? "on every interface" : "beyond this machine";
      problems.push(
        `${CONFIG_NAMESPACE}:debugPorts: would publish Redis and Kafka ${where} (${CONFIG_NAMESPACE}:publishAddress is ${address}); set ${CONFIG_NAMESPACE}:debugPortsOnAllInterfaces true to mean it, or turn ${CONFIG_NAMESPACE}:debugPorts off`,
      );
    }
    const published: [string, number][] = [
      ["httpPort", c.httpPort ?? 8080],
      ["webPort", c.webPort ?? 3000],
      ["metricsPort", c.metricsPort ?? 8090],
      ...(debugPorts
        ? ([
            ["debugPorts (Redis)", DEBUG_PORTS.redis],
            ...(c.kafka === false ? [] : [["debugPorts (Kafka)", DEBUG_PORTS.kafka]]),
          ] as [string, number][])
        : []),
    ];
    published.forEach(([key, port], i) => {
      const clash = published.slice(0, i).find(([, other]) => other === port);
      if (clash) problems.push(`${CONFIG_NAMESPACE}:${key}: port ${port} is already published for ${clash[0]}`);
    });
    if (c.provider === "openai" && !c.openaiApiKey && !c.openaiBaseUrl) {
      problems.push(
        `${CONFIG_NAMESPACE}:provider: openai needs ${CONFIG_NAMESPACE}:openaiApiKey (set it with --secret) or ${CONFIG_NAMESPACE}:openaiBaseUrl`,
      );
    }
    const platform = c.platform ?? hostPlatform();
    if (!platform) {
      problems.push(
        `${CONFIG_NAMESPACE}:platform: this machine's architecture (${process.arch}) is neither amd64 nor arm64; set one of ${DOCKER_PLATFORMS.join(", ")}`,
      );
    }
    if (problems.length === 0 && platform) {
      const topologyConfig = parseTopologyConfig({
        gatewayNodes: c.gatewayNodes,
        aiNodes: c.aiNodes,
        httpPort: c.httpPort,
        webPort: c.webPort,
        metricsPort: c.metricsPort,
        provider: {
          kind: c.provider,
          demoTokensPerSecond: c.demoTokensPerSecond,
          demoMaxTokens: c.demoMaxTokens,
          openaiBaseUrl: c.openaiBaseUrl,
          openaiModel: c.openaiModel,
        },
        kafka: { enabled: c.kafka, topic: c.kafkaTopic, partitions: c.kafkaPartitions },
        apiRatePerSecond: c.apiRatePerSecond,
        apiBurst: c.apiBurst,
        wsConnectionsPerAddress: c.wsConnectionsPerAddress,
        maxClientConnections: c.maxClientConnections,
        clientTimeoutSeconds: c.clientTimeoutSeconds,
        nodeEnv: c.nodeEnv,
      });
      return {
        topology: topologyConfig,
        debugPorts,
        debugPortsOnAllInterfaces: c.debugPortsOnAllInterfaces ?? false,
        publishAddress: c.publishAddress ?? "127.0.0.1",
        redisMaxMemory: c.redisMaxMemory ?? DEFAULT_REDIS_MAXMEMORY,
        openaiApiKey: c.openaiApiKey,
        images: { ...images, ...c.images },
        platform,
      };
    }
  }
  throw new Error(
    `invalid chatgrid stack configuration:\n${problems.map((p) => `  ${p}`).join("\n")}\n` +
      `Change a value with: pulumi config set ${CONFIG_NAMESPACE}:<key> <value>   (remove one: pulumi config rm ${CONFIG_NAMESPACE}:<key>)`,
  );
}

/** The `chatgrid:` values of the running stack (Pulumi.<stack>.yaml and `pulumi config set`), validated. */
export function readStackConfig(): StackConfig {
  const prefix = `${CONFIG_NAMESPACE}:`;
  const raw = Object.fromEntries(
    Object.entries(pulumi.runtime.allConfig())
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  );
  return parseStackConfig(raw);
}
