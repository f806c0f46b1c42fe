import { z } from "zod";
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

/** An integer of at least `min` read from an environment variable, with a default. */
export const envInt = (fallback: number, min = 1) =>
  z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).default(fallback));

/** "true/false/1/0/yes/no" from an environment variable. */
export const envBool = (fallback: boolean) =>
  z
    .preprocess(unsetIfEmpty, z.enum(["true", "false", "1", "0", "yes", "no"]).default(fallback ? "true" : "false"))
    .transform((value) => value === "true" || value === "1" || value === "yes");

/** The Redis and retention settings every node reads the same way. */
export const storeEnvSchema = z.object({
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL")
    .default("redis://127.0.0.1:6379"),
  HISTORY_TTL_MS: envInt(defaults.historyTtlMs),
  HISTORY_MAX_LEN: envInt(defaults.historyMaxLen, 10),
  RETENTION_TTL_MS: envInt(defaults.retentionTtlMs),
  STREAM_LEASE_MS: envInt(defaults.leaseMs, 500),
  DISPATCH_DEADLINE_MS: envInt(defaults.dispatchDeadlineMs, 500),
});
export type StoreEnv = z.infer<typeof storeEnvSchema>;

export function storeOptionsFromEnv(env: StoreEnv): StreamStoreOptions {
  return {
    historyTtlMs: env.HISTORY_TTL_MS,
    historyMaxLen: env.HISTORY_MAX_LEN,
    retentionTtlMs: env.RETENTION_TTL_MS,
    leaseMs: env.STREAM_LEASE_MS,
    dispatchDeadlineMs: env.DISPATCH_DEADLINE_MS,
  };
}
