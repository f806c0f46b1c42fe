import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { TopologyConfigSchema } from "../topology";

/** The Pulumi config namespace: `pulumi config set chatgrid:gatewayNodes 5`. */
export const CONFIG_NAMESPACE = "chatgrid";

/** The program's targets: one Pulumi project, one program per stack (infra/index.ts picks it). */
export type Target = "local" | "aws";

/**
 * The keys that belong to one target only. A key of the other target is an error that says so (docs/aws.md,
 * "Configuration"): copying a Docker setting into the AWS stack must not pass silently. Each target's schema is
 * the shared keys plus its own; infra/stacks/settings.test.ts checks these lists against the schemas.
 */
export const TARGET_ONLY_KEYS: Record<Target, readonly string[]> = {
  local: [
    "httpPort",
    "webPort",
    "metricsPort",
    "debugPorts",
    "debugPortsOnAllInterfaces",
    "redisMaxMemory",
    "publishAddress",
    "kafka",
    "images",
    "platform",
  ],
  aws: [
    "availabilityZones",
    "webTasks",
    "cpuArchitecture",
    "gatewayTask",
    "aiTask",
    "webTask",
    "natGateways",
    "vpcEndpoints",
    "redisEngine",
    "redisEngineVersion",
    "redisNodeType",
    "kafkaMode",
    "kafkaBrokerType",
    "kafkaVersion",
    "kafkaVolumeGiB",
    "logRetentionDays",
    "certificateArn",
    "publicOrigin",
    "secretRecoveryWindowDays",
    "deletionProtection",
  ],
};

const topology = TopologyConfigSchema.shape;
const provider = topology.provider.unwrap().shape;
const kafka = topology.kafka.unwrap().shape;

/** A whole number written as text (Pulumi hands every value over as a string), then the topology's own rule. */
export const int = (rule: z.ZodNumber) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, "expected a whole number")
    .transform(Number)
    .pipe(rule);
export const bool = z
  .string()
  .trim()
  .refine((v) => v === "true" || v === "false", "expected true or false")
  .transform((v) => v === "true");
export const json = <T>(rule: z.ZodType<T>) =>
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
/** One of a fixed list of words. */
export const oneOf = <T extends string>(values: readonly T[]) =>
  z
    .string()
    .trim()
    .refine((v) => (values as readonly string[]).includes(v), `expected one of ${values.join(", ")}`)
    .transform((v) => v as T);

/** The keys every target has: the topology (node counts, provider, edge limits) and the model key. */
export const SHARED_SETTINGS = {
  gatewayNodes: int(topology.gatewayNodes.unwrap()).optional(),
  aiNodes: int(topology.aiNodes.unwrap()).optional(),
  provider: provider.kind.optional(),
  demoTokensPerSecond: int(provider.demoTokensPerSecond.unwrap()).optional(),
  demoMaxTokens: int(provider.demoMaxTokens.unwrap()).optional(),
  openaiBaseUrl: provider.openaiBaseUrl,
  openaiModel: provider.openaiModel,
  openaiApiKey: z
    .string()
    .min(1, "expected the API key (pulumi config set --secret chatgrid:openaiApiKey …)")
    .optional(),
  kafkaTopic: kafka.topic.optional(),
  kafkaPartitions: int(kafka.partitions.unwrap()).optional(),
  apiRatePerSecond: int(topology.apiRatePerSecond.unwrap()).optional(),
  apiBurst: int(topology.apiBurst.unwrap()).optional(),
  wsConnectionsPerAddress: int(topology.wsConnectionsPerAddress.unwrap()).optional(),
  maxClientConnections: int(topology.maxClientConnections.unwrap()).optional(),
  clientTimeoutSeconds: int(topology.clientTimeoutSeconds.unwrap()).optional(),
  nodeEnv: json(topology.nodeEnv.unwrap()).optional(),
};

/** The shared keys' values, parsed. */
export type SharedValues = z.infer<z.ZodObject<typeof SHARED_SETTINGS>>;

/** The topology's input from the shared keys (each target adds its ports and its Kafka switch). */
export function sharedTopologyInput(c: SharedValues) {
  return {
    gatewayNodes: c.gatewayNodes,
    aiNodes: c.aiNodes,
    provider: {
      kind: c.provider,
      demoTokensPerSecond: c.demoTokensPerSecond,
      demoMaxTokens: c.demoMaxTokens,
      openaiBaseUrl: c.openaiBaseUrl,
      openaiModel: c.openaiModel,
    },
    apiRatePerSecond: c.apiRatePerSecond,
    apiBurst: c.apiBurst,
    wsConnectionsPerAddress: c.wsConnectionsPerAddress,
    maxClientConnections: c.maxClientConnections,
    clientTimeoutSeconds: c.clientTimeoutSeconds,
    nodeEnv: c.nodeEnv,
  };
}

/** Cross-key problems of the shared keys, the same on every target. */
export function sharedProblems(c: SharedValues): string[] {
  if (c.provider === "openai" && !c.openaiApiKey && !c.openaiBaseUrl) {
    return [
      `${key("provider")}: openai needs ${key("openaiApiKey")} (set it with --secret) or ${key("openaiBaseUrl")}`,
    ];
  }
  return [];
}

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

/** `chatgrid:<key>` */
export const key = (name: string): string => `${CONFIG_NAMESPACE}:${name}`;

/**
 * Validates raw `chatgrid:` values against one target's schema: unknown keys, keys of the other target and every
 * schema issue become one line each (`  chatgrid:gatewayNodes: at least 1 gateway node (got "0")`), all at once.
 * Returns the parsed values and the problems so far; the caller adds its cross-key checks and calls `fail`.
 */
export function parseSettings<S extends z.ZodRawShape>(
  raw: Record<string, string | undefined>,
  target: Target,
  shape: S,
): { values?: z.infer<z.ZodObject<S>>; problems: string[] } {
  const problems: string[] = [];
  const known = Object.keys(shape);
  const other: Target = target === "local" ? "aws" : "local";
  const unknown = Object.keys(raw).filter((name) => !known.includes(name));
  for (const name of unknown) {
    problems.push(
      TARGET_ONLY_KEYS[other].includes(name)
        ? `${key(name)}: a setting of the ${other} stack, not of ${target} (remove it: pulumi config rm ${key(name)})`
        : `${key(name)}: not a chatgrid setting (known: ${known.join(", ")})`,
    );
  }
  const given = Object.fromEntries(
    Object.entries(raw).filter(([name, v]) => !unknown.includes(name) && v !== undefined),
  );
  const parsed = z.object(shape).safeParse(given);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? "(config)");
      const rest = issue.path.slice(1).join(".");
      const found = offending(given[name], issue.path.slice(1));
      const got = found ? ` (got ${quote(found.value)})` : "";
      problems.push(`${key(name)}${rest ? `.${rest}` : ""}: ${issue.message}${got}`);
    }
    return { problems };
  }
  return { values: parsed.data, problems };
}

/** The error every target throws for its problems: the lines, then how to change a value. */
export function configError(problems: string[]): Error {
  return new Error(
    `invalid chatgrid stack configuration:\n${problems.map((p) => `  ${p}`).join("\n")}\n` +
      `Change a value with: pulumi config set ${CONFIG_NAMESPACE}:<key> <value>   (remove one: pulumi config rm ${CONFIG_NAMESPACE}:<key>)`,
  );
}

/** The running stack's `chatgrid:` values (Pulumi.<stack>.yaml and `pulumi config set`), keys without namespace. */
export function rawStackSettings(): Record<string, string> {
  const prefix = `${CONFIG_NAMESPACE}:`;
  return Object.fromEntries(
    Object.entries(pulumi.runtime.allConfig())
      .filter(([name]) => name.startsWith(prefix))
      .map(([name, value]) => [name.slice(prefix.length), value]),
  );
}
