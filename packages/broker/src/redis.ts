import { createHash } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";

/**
 * Connection options shared by every node. Commands fail at once while Redis is away (no offline queue), so a
 * request answers 503 instead of hanging; the connection retries forever in the background with a capped backoff.
 */
export function createRedis(url: string, name: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 3000,
    connectTimeout: 3000,
    enableReadyCheck: true,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 2000),
    ...extra,
  });
}

/** Connects and waits for `ready`, retrying until the deadline; used at start so nodes can come up before Redis. */
export async function connectRedis(redis: Redis, timeoutMs = 30_000): Promise<void> {
  if (redis.status === "ready") return;
  const deadline = Date.now() + timeoutMs;
  if (redis.status === "wait") await redis.connect().catch(() => undefined);
  while ((redis.status as string) !== "ready") {
    if (Date.now() > deadline) throw new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A Lua script run by EVALSHA with a fallback to EVAL (Redis forgets scripts when it restarts). */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run<T>(redis: Redis, keys: string[], args: (string | number)[]): Promise<T> {
    try {
      return (await redis.evalsha(this.sha, keys.length, ...keys, ...args)) as T;
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
        return (await redis.eval(this.source, keys.length, ...keys, ...args)) as T;
      }
      throw error;
    }
  }
}

export const isRedisReady = (redis: Redis): boolean => redis.status === "ready";
