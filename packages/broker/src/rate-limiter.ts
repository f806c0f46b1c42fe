import type { Redis } from "ioredis";
import { keys } from "./keys";
import { LuaScript } from "./redis";
import { RATE_LIMIT } from "./scripts";

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** A token bucket: `rate` tokens per `periodMs` sustained, at most `burst` at once. */
export interface RateLimit {
  rate: number;
  periodMs: number;
  burst: number;
}

/** What the gateway's limits need from a limiter (tests may pass an in-memory one). */
export interface RateLimiterLike {
  check(id: string, cost?: number): Promise<RateDecision>;
}

const script = new LuaScript(RATE_LIMIT);

/**
 * A token bucket per key in Redis, as GCRA (the "theoretical arrival time" form): one string per key, one script
 * call per check, Redis's clock. Unlike a fixed window it never admits twice its rate across a window edge: in any
 * period at most `burst + rate` requests pass (docs/security.md "Rate limits"). It holds across gateways, since a
 * session or an address may use several at once (tabs, failover).
 */
export class RateLimiter implements RateLimiterLike {
  private readonly intervalMs: number;

  constructor(
    private readonly redis: Redis,
    /** Names the limit in its keys (`cg:rl:<scope>:<id>`): `session`, `create`, … */
    private readonly scope: string,
    readonly limit: RateLimit,
  ) {
    if (!(limit.rate > 0 && limit.periodMs > 0 && limit.burst >= 1)) {
      throw new Error(`RateLimiter ${scope}: rate, periodMs must be > 0 and burst >= 1`);
    }
    this.intervalMs = limit.periodMs / limit.rate;
  }

  /** Takes `cost` tokens for `id`, or none when that many are not there. */
  async check(id: string, cost = 1): Promise<RateDecision> {
    const call = this.call(id, cost);
    return rateDecisionOf(await script.run<unknown>(this.redis, [call.key], call.args));
  }

  /**
   * The bucket's key and the RATE_LIMIT script's arguments for one check: for scripts that run this check as one
   * step of several in a single call (StreamSlots.admit), with the same Lua and the same decision.
   */
  call(id: string, cost = 1): RateCall {
    return { key: keys.rate(this.scope, id), args: [this.intervalMs, this.limit.burst, cost] };
  }
}

/** One check of a RateLimiter, as a step of a larger script: KEYS[1] and ARGV of RATE_LIMIT. */
export interface RateCall {
  key: string;
  args: [intervalMs: number, burst: number, cost: number];
}

/** The decision of a RATE_LIMIT reply ({1, 0} or {0, retryAfterMs}). */
export function rateDecisionOf(result: unknown): RateDecision {
  if (!Array.isArray(result) || typeof result[0] !== "number" || typeof result[1] !== "number") {
    throw new Error("rate limit script returned an unexpected reply");
  }
  if (result[0] === 1) return { allowed: true };
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(result[1] / 1000)) };
}
