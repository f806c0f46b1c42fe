import { z } from "zod";
import { parseTopologyConfig, type TopologyConfig } from "../topology";
import {
  bool,
  configError,
  int,
  key,
  oneOf,
  parseSettings,
  rawStackSettings,
  SHARED_SETTINGS,
  sharedProblems,
  sharedTopologyInput,
} from "./settings";

/** Fargate's CPU architectures; the images are built for the same one (docs/aws.md "Images"). */
export const CPU_ARCHITECTURES = ["ARM64", "X86_64"] as const;
export type CpuArchitecture = (typeof CPU_ARCHITECTURES)[number];

/** The Docker platform an image for a Fargate architecture is built for. */
export const PLATFORM_OF: Record<CpuArchitecture, "linux/arm64" | "linux/amd64"> = {
  ARM64: "linux/arm64",
  X86_64: "linux/amd64",
};

/** CloudWatch Logs' allowed retentions in days (0, never expire, is refused: logs must not grow without bound). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** A Fargate task size: CPU units and memory in MiB. */
export interface TaskSize {
  cpu: number;
  memory: number;
}

/** Fargate's valid CPU/memory pairs: for each CPU, the memory range and its step (MiB). */
const FARGATE_SIZES: Record<number, { min: number; max: number; step: number }> = {
  256: { min: 512, max: 2048, step: 512 },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16384, step: 1024 },
  4096: { min: 8192, max: 30720, step: 1024 },
  8192: { min: 16384, max: 61440, step: 4096 },
  16384: { min: 32768, max: 122880, step: 8192 },
};

/** Whether Fargate accepts the pair (256 CPU takes 512, 1024 or 2048 MiB: its step is irregular). */
export function isFargateSize({ cpu, memory }: TaskSize): boolean {
  const range = FARGATE_SIZES[cpu];
  if (!range) return false;
  if (cpu === 256) return [512, 1024, 2048].includes(memory);
  return memory >= range.min && memory <= range.max && (memory - range.min) % range.step === 0;
}

const taskSize = z
  .string()
  .trim()
  .regex(/^\d+\/\d+$/, "expected <cpu>/<memory MiB>, e.g. 512/1024")
  .transform((text) => {
    const [cpu, memory] = text.split("/").map(Number) as [number, number];
    return { cpu, memory };
  })
  .refine(
    isFargateSize,
    "not a Fargate size (CPU 256 takes 512, 1024 or 2048 MiB; 512: 1024–4096; 1024: 2048–8192; …)",
  );

/** The `aws` stack's own keys (docs/aws.md "Configuration"); the shared ones are the topology's. */
const AWS_SETTINGS = {
  ...SHARED_SETTINGS,
  availabilityZones: z
    .string()
    .trim()
    .transform((text) => text.split(",").map((zone) => zone.trim()))
    .pipe(
      z
        .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, "expected zone names such as us-east-1a,us-east-1b"))
        .min(2, "at least 2 availability zones (ElastiCache Multi-AZ and one MSK broker per zone need them)")
        .max(3, "at most 3 availability zones (the subnet plan and MSK's one broker per zone)")
        .refine((zones) => new Set(zones).size === zones.length, "each zone once"),
    )
    .optional(),
  webTasks: int(z.number().int().min(1, "at least 1 web task").max(20, "at most 20 web tasks")).optional(),
  cpuArchitecture: oneOf(CPU_ARCHITECTURES).optional(),
  gatewayTask: taskSize.optional(),
  aiTask: taskSize.optional(),
  webTask: taskSize.optional(),
  natGateways: oneOf(["single", "perAz"] as const).optional(),
  vpcEndpoints: bool.optional(),
  redisEngine: oneOf(["valkey", "redis"] as const).optional(),
  redisEngineVersion: z
    .string()
    .trim()
    .regex(/^\d+\.\d+$/, "expected a major.minor version such as 8.0")
    .optional(),
  redisNodeType: z
    .string()
    .trim()
    .regex(/^cache\.[a-z0-9]+\.[a-z0-9]+$/, "expected an ElastiCache node type such as cache.t4g.small")
    .optional(),
  kafkaMode: oneOf(["provisioned", "off"] as const).optional(),
  kafkaBrokerType: z
    .string()
    .trim()
    .regex(/^kafka\.[a-z0-9]+\.[a-z0-9]+$/, "expected an MSK broker type such as kafka.t3.small")
    .optional(),
  kafkaVersion: z
    .string()
    .trim()
    .regex(/^\d+\.\d+\.(\d+|x)$/, "expected an MSK Kafka version such as 3.9.x")
    // The program owns the events topic through MSK's topic API, which needs Kafka 3.6 or later.
    .refine((v) => {
      const [major, minor] = v.split(".").map(Number) as [number, number];
      return major > 3 || (major === 3 && minor >= 6);
    }, "MSK's topic API (the program owns the events topic) needs Kafka 3.6 or later")
    .optional(),
  kafkaVolumeGiB: int(z.number().int().min(1, "at least 1 GiB").max(16384, "at most 16384 GiB")).optional(),
  logRetentionDays: int(
    z
      .number()
      .int()
      .refine(
        (days) => (LOG_RETENTION_DAYS as readonly number[]).includes(days),
        `expected one of CloudWatch's retentions: ${LOG_RETENTION_DAYS.join(", ")}`,
      ),
  ).optional(),
  certificateArn: z
    .string()
    .trim()
    .regex(
      /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[0-9a-f-]{36}$/,
      "expected an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
    )
    .optional(),
  publicOrigin: z
    .string()
    .trim()
    .regex(/^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/, "expected an origin such as https://chat.example.com (no path)")
    .optional(),
  secretRecoveryWindowDays: int(
    z
      .number()
      .int()
      .refine((days) => days === 0 || (days >= 7 && days <= 30), "expected 0 (delete at once) or 7 to 30 days"),
  ).optional(),
  deletionProtection: bool.optional(),
};

export const AWS_CONFIG_KEYS = Object.keys(AWS_SETTINGS);

/** The typed configuration of the `aws` stack (docs/aws.md "Configuration"). */
export interface AwsStackConfig {
  topology: TopologyConfig;
  /** `aws:region`, the provider's. */
  region: string;
  availabilityZones: string[];
  webTasks: number;
  cpuArchitecture: CpuArchitecture;
  tasks: { gateway: TaskSize; ai: TaskSize; web: TaskSize };
  natGateways: "single" | "perAz";
  vpcEndpoints: boolean;
  redis: { engine: "valkey" | "redis"; engineVersion: string; nodeType: string };
  /** `undefined`: Kafka off (no MSK cluster, events off in every node). */
  kafka?: { brokerType: string; version: string; volumeGiB: number; topic: string; partitions: number };
  logRetentionDays: number;
  certificateArn?: string;
  publicOrigin?: string;
  secretRecoveryWindowDays: number;
  deletionProtection: boolean;
  openaiApiKey?: string;
}

export const AWS_DEFAULTS = {
  webTasks: 2,
  cpuArchitecture: "ARM64",
  tasks: { gateway: { cpu: 512, memory: 1024 }, ai: { cpu: 512, memory: 1024 }, web: { cpu: 256, memory: 512 } },
  natGateways: "single",
  redisEngine: "valkey",
  redisEngineVersion: { valkey: "8.0", redis: "7.1" },
  redisNodeType: "cache.t4g.small",
  kafkaBrokerType: "kafka.t3.small",
  kafkaVersion: "3.9.x",
  kafkaVolumeGiB: 10,
  logRetentionDays: 30,
  secretRecoveryWindowDays: 7,
} as const;

/**
 * Validates the raw `chatgrid:` values of an `aws` stack and its `aws:region`. Every problem is reported at once,
 * one line each naming the key; a Docker-only key (debugPorts, httpPort, …) is one of them.
 */
export function parseAwsStackConfig(
  raw: Record<string, string | undefined>,
  region: string | undefined,
): AwsStackConfig {
  const { values: c, problems } = parseSettings(raw, "aws", AWS_SETTINGS);
  if (!region) problems.push("aws:region: required (pulumi config set aws:region us-east-1)");
  else if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region))
    problems.push(`aws:region: expected a region such as us-east-1 (got "${region}")`);
  if (c && region) {
    const zones = c.availabilityZones ?? [`${region}a`, `${region}b`];
    const foreign = zones.filter((zone) => zone.slice(0, -1) !== region);
    if (foreign.length > 0) {
      problems.push(`${key("availabilityZones")}: ${foreign.join(", ")} not in ${region} (aws:region)`);
    }
    if (c.certificateArn && c.certificateArn.split(":")[3] !== region) {
      problems.push(`${key("certificateArn")}: the certificate must be in ${region}, the load balancer's region`);
    }
    if (c.certificateArn && c.publicOrigin && !c.publicOrigin.startsWith("https://")) {
      problems.push(`${key("publicOrigin")}: with a certificate the origin is https:// (got "${c.publicOrigin}")`);
    }
    problems.push(...sharedProblems(c));
    if (problems.length === 0) {
      const kafkaOn = (c.kafkaMode ?? "provisioned") === "provisioned";
      const topology = parseTopologyConfig({
        ...sharedTopologyInput(c),
        kafka: { enabled: kafkaOn, topic: c.kafkaTopic, partitions: c.kafkaPartitions },
      });
      const engine = c.redisEngine ?? AWS_DEFAULTS.redisEngine;
      return {
        topology,
        region,
        availabilityZones: zones,
        webTasks: c.webTasks ?? AWS_DEFAULTS.webTasks,
        cpuArchitecture: c.cpuArchitecture ?? AWS_DEFAULTS.cpuArchitecture,
        tasks: {
          gateway: c.gatewayTask ?? AWS_DEFAULTS.tasks.gateway,
          ai: c.aiTask ?? AWS_DEFAULTS.tasks.ai,
          web: c.webTask ?? AWS_DEFAULTS.tasks.web,
        },
        natGateways: c.natGateways ?? AWS_DEFAULTS.natGateways,
        vpcEndpoints: c.vpcEndpoints ?? false,
        redis: {
          engine,
          engineVersion: c.redisEngineVersion ?? AWS_DEFAULTS.redisEngineVersion[engine],
          nodeType: c.redisNodeType ?? AWS_DEFAULTS.redisNodeType,
        },
        kafka: kafkaOn
          ? {
              brokerType: c.kafkaBrokerType ?? AWS_DEFAULTS.kafkaBrokerType,
              version: c.kafkaVersion ?? AWS_DEFAULTS.kafkaVersion,
              volumeGiB: c.kafkaVolumeGiB ?? AWS_DEFAULTS.kafkaVolumeGiB,
              topic: topology.kafka.topic,
              partitions: topology.kafka.partitions,
            }
          : undefined,
        logRetentionDays: c.logRetentionDays ?? AWS_DEFAULTS.logRetentionDays,
        certificateArn: c.certificateArn,
        publicOrigin: c.publicOrigin,
        secretRecoveryWindowDays: c.secretRecoveryWindowDays ?? AWS_DEFAULTS.secretRecoveryWindowDays,
        deletionProtection: c.deletionProtection ?? false,
        openaiApiKey: c.openaiApiKey,
      };
    }
  }
  throw configError(problems);
}

/** The running `aws` stack's configuration, validated. */
export function readAwsStackConfig(region: string | undefined): AwsStackConfig {
  return parseAwsStackConfig(rawStackSettings(), region);
}
