import { z } from "zod";
import { type ImagePins, images, PINNED_IMAGE, PINNED_IMAGE_EXPECTED, PULLED_IMAGES } from "../images";
import { DEFAULT_REDIS_MAXMEMORY, REDIS_MEMORY_EXPECTED, REDIS_MEMORY_SIZE } from "../runner/redis-conf";
import { parseTopologyConfig, type TopologyConfig, TopologyConfigSchema } from "../topology";
import {
  bool,
  CONFIG_NAMESPACE,
  configError,
  int,
  json,
  parseSettings,
  rawStackSettings,
  SHARED_SETTINGS,
  sharedProblems,
  sharedTopologyInput,
} from "./settings";

export { CONFIG_NAMESPACE };

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
const LOCAL_SETTINGS = {
  ...SHARED_SETTINGS,
  httpPort: int(topology.httpPort.unwrap()).optional(),
  webPort: int(topology.webPort.unwrap()).optional(),
  metricsPort: int(topology.metricsPort.unwrap()).optional(),
  debugPorts: bool.optional(),
  debugPortsOnAllInterfaces: bool.optional(),
  redisMaxMemory: z.string().trim().regex(REDIS_MEMORY_SIZE, REDIS_MEMORY_EXPECTED).optional(),
  publishAddress: z.ipv4("expected an IPv4 address such as 127.0.0.1 (this machine only) or 0.0.0.0").optional(),
  kafka: bool.optional(),
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
};

export const STACK_CONFIG_KEYS = Object.keys(LOCAL_SETTINGS);

/**
 * Validates the raw `chatgrid:` values (keys without the namespace, values as Pulumi gives them: strings). Every
 * problem is reported at once, each on a line naming the key and what it expects, e.g.
 * `  chatgrid:gatewayNodes: at least 1 gateway node (got "0")`.
 */
export function parseStackConfig(raw: Record<string, string | undefined>): StackConfig {
  const { values: c, problems } = parseSettings(raw, "local", LOCAL_SETTINGS);
  if (c && problems.length === 0) {
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
    problems.push(...sharedProblems(c));
    const platform = c.platform ?? hostPlatform();
    if (!platform) {
      problems.push(
        `${CONFIG_NAMESPACE}:platform: this machine's architecture (${process.arch}) is neither amd64 nor arm64; set one of ${DOCKER_PLATFORMS.join(", ")}`,
      );
    }
    if (problems.length === 0 && platform) {
      const topologyConfig = parseTopologyConfig({
        ...sharedTopologyInput(c),
        httpPort: c.httpPort,
        webPort: c.webPort,
        metricsPort: c.metricsPort,
        kafka: { enabled: c.kafka, topic: c.kafkaTopic, partitions: c.kafkaPartitions },
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
  throw configError(problems);
}

/** The `chatgrid:` values of the running stack (Pulumi.<stack>.yaml and `pulumi config set`), validated. */
export function readStackConfig(): StackConfig {
  return parseStackConfig(rawStackSettings());
}
