import type { Redis, RedisOptions } from "ioredis";
import { z } from "zod";
import { createRedis } from "./redis";
import { defaultStreamStoreOptions as defaults, type StreamStoreOptions } from "./stream-store";

/** Parses environment variables with a schema; on error, one message naming every bad variable and what it expects. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `  ${issue.path.join(".") || "(env)"}: ${issue.message}`);
  throw new Error(`invalid configuration:\n${problems.join("\n")}`);
}

/** Empty variables (`PORT=` in a container spec) mean "not set", never 0. */
const unsetIfEmpty = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);

/** The longest delay a Node.js timer keeps (larger ones fire at once): the upper bound of every time setting. */
export const MAX_TIMER_MS = 2_147_483_647;

/** An integer from `min` to `max` read from an environment variable, with a default. */
export const envInt = (fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).max(max).default(fallback));

/** "true/false/1/0/yes/no" from an environment variable. */
export const envBool = (fallback: boolean) =>
  z
    .preprocess(unsetIfEmpty, z.enum(["true", "false", "1", "0", "yes", "no"]).default(fallback ? "true" : "false"))
    .transform((value) => value === "true" || value === "1" || value === "yes");

/** The shortest cluster secret accepted: 32 characters (e.g. 24 random bytes in base64url). */
export const CLUSTER_SECRET_MIN_CHARS = 32;

/** The Redis, cluster-credential and retention settings every node reads the same way. */
export const storeEnvSchema = z.object({
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL")
    .default("redis://127.0.0.1:6379"),
  /** Redis's password (`requirepass`, or ElastiCache's auth token); kept out of REDIS_URL so the URL can be logged. */
  REDIS_PASSWORD: z.preprocess(unsetIfEmpty, z.string().optional()),
  /**
   * The secret nodes share (docs/security.md "Node credentials"): AI nodes sign their registration with it and
   * gateways send it with every dispatch. Whoever can only write to Redis cannot join as an AI node.
   */
  CLUSTER_SECRET: z.preprocess(
    unsetIfEmpty,
    z
      .string({
        error: `required: a random secret of at least ${CLUSTER_SECRET_MIN_CHARS} characters shared by every node`,
      })
      .min(CLUSTER_SECRET_MIN_CHARS, `at least ${CLUSTER_SECRET_MIN_CHARS} characters`),
  ),
  /** An answer runs at most this long (from its request); it then ends with finishReason "timeout". */
  STREAM_MAX_DURATION_MS: envInt(defaults.maxDurationMs, 1000, MAX_TIMER_MS),
  HISTORY_TTL_MS: envInt(defaults.historyTtlMs),
  HISTORY_MAX_LEN: envInt(defaults.historyMaxLen, 10),
  RETENTION_TTL_MS: envInt(defaults.retentionTtlMs),
  STREAM_LEASE_MS: envInt(defaults.leaseMs, 500),
  DISPATCH_DEADLINE_MS: envInt(defaults.dispatchDeadlineMs, 500),
  /** At most this many chunks per append call to Redis (docs/redis.md "Appending chunks"): bounds one call's time. */
  APPEND_BATCH_MAX: envInt(defaults.maxChunkBatch, 1, 1024),
});
export type StoreEnv = z.infer<typeof storeEnvSchema>;

/** A Redis connection of a node, with the password from REDIS_PASSWORD (a password in REDIS_URL works too). */
export function redisFromEnv(env: StoreEnv, name: string, extra: RedisOptions = {}): Redis {
  return createRedis(env.REDIS_URL, name, env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD, ...extra } : extra);
}

export function storeOptionsFromEnv(env: StoreEnv): StreamStoreOptions {
  return {
    historyTtlMs: env.HISTORY_TTL_MS,
    historyMaxLen: env.HISTORY_MAX_LEN,
    retentionTtlMs: env.RETENTION_TTL_MS,
    leaseMs: env.STREAM_LEASE_MS,
    dispatchDeadlineMs: env.DISPATCH_DEADLINE_MS,
    maxDurationMs: env.STREAM_MAX_DURATION_MS,
    maxChunkBatch: env.APPEND_BATCH_MAX,
  };
}
