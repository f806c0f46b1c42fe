import type { Redis } from "ioredis";
import { keys } from "./keys";

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * A fixed-window counter per session in Redis, so the limit holds across gateways
 * (a session may use several gateways at once, through several tabs or after failover).
 */
export class SessionRateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  async check(sessionId: string, now = Date.now()): Promise<RateDecision> {
    const window = Math.floor(now / this.windowMs);
    const key = keys.rate(sessionId, window);
    const result = await this.redis.multi().incr(key).pexpire(key, this.windowMs).exec();
    const count = Number(result?.[0]?.[1] ?? 0);
    if (count <= this.limit) return { allowed: true };
    const retryAfterMs = (window + 1) * this.windowMs - now;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) };
  }
}
