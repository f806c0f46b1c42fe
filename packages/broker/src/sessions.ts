import type { Redis } from "ioredis";
import { hashToken, isWellFormedToken, newId, newToken } from "./ids";
import { keys } from "./keys";
import { LuaScript } from "./redis";

/**
 * A token's session, and both idle timeouts refreshed, in one call.
 * KEYS: token   ARGV: 1 idle TTL ms, 2 the session hash's key prefix (keys.session(""); the id is the token's value)
 * Returns the session id, or false for an unknown or expired token (nothing refreshed).
 */
const RESOLVE_SCRIPT = new LuaScript(`
local sessionId = redis.call('GET', KEYS[1])
if not sessionId then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', ARGV[2] .. sessionId, ARGV[1])
return sessionId
`);

/**
 * A node's memory of tokens it resolved lately (docs/security.md "REST API (gateways)"): a hit answers without Redis, so an
 * authenticated request makes one Redis round trip fewer (docs/benchmarks.md "Changes, before and after", 9).
 * `ttlMs` 0 turns it off. Only tokens Redis knew are kept, at most `maxEntries` (the oldest goes first), each for
 * `ttlMs`: a session that expires or is evicted in Redis stays usable on this node for at most that long.
 */
export interface SessionCacheOptions {
  ttlMs: number;
  maxEntries: number;
  /** Monotonic milliseconds (tests pass their own clock). */
  now?: () => number;
}

const NO_CACHE: SessionCacheOptions = { ttlMs: 0, maxEntries: 0 };

/** Sessions: a random 256-bit token for the client, only its SHA-256 in Redis, expiring after idle time. */
export class SessionStore {
  /** Token key → its session and until when (by `now`) this node may answer it without Redis. */
  private readonly cached = new Map<string, { sessionId: string; until: number }>();
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly idleTtlMs: number,
    private readonly cache: SessionCacheOptions = NO_CACHE,
  ) {
    if (!Number.isInteger(cache.ttlMs) || cache.ttlMs < 0) {
      throw new Error(`SessionStore: cache.ttlMs must be a whole number of ms ≥ 0, got ${cache.ttlMs}`);
    }
    if (cache.ttlMs > 0 && (!Number.isInteger(cache.maxEntries) || cache.maxEntries < 1)) {
      throw new Error(`SessionStore: cache.maxEntries must be a positive whole number, got ${cache.maxEntries}`);
    }
    this.now = cache.now ?? (() => performance.now());
  }

  async create(): Promise<{ sessionId: string; token: string }> {
    const sessionId = newId("sess");
    const token = newToken();
    await this.redis
      .multi()
      .set(keys.token(hashToken(token)), sessionId, "PX", this.idleTtlMs)
      .hset(keys.session(sessionId), "createdAt", Date.now())
      .pexpire(keys.session(sessionId), this.idleTtlMs)
      .exec();
    return { sessionId, token };
  }

  /**
   * The session of a token, refreshing its idle timeout; undefined for a malformed, unknown or expired token. A
   * token resolved within the cache's TTL is answered from memory (its idle timeout was refreshed then: days, not
   * seconds); an unknown one always asks Redis.
   */
  async resolve(token: string): Promise<string | undefined> {
    if (!isWellFormedToken(token)) return undefined;
    const tokenKey = keys.token(hashToken(token));
    const hit = this.cached.get(tokenKey);
    if (hit) {
      if (hit.until > this.now()) return hit.sessionId;
      this.cached.delete(tokenKey);
    }
    const reply = await RESOLVE_SCRIPT.run<unknown>(this.redis, [tokenKey], [this.idleTtlMs, keys.session("")]);
    const sessionId = typeof reply === "string" && reply !== "" ? reply : undefined;
    if (sessionId && this.cache.ttlMs > 0) this.remember(tokenKey, sessionId);
    return sessionId;
  }

  private remember(tokenKey: string, sessionId: string): void {
    if (this.cached.size >= this.cache.maxEntries) {
      // A Map iterates in insertion order: the first key is the oldest entry.
      const oldest = this.cached.keys().next();
      if (!oldest.done) this.cached.delete(oldest.value);
    }
    this.cached.set(tokenKey, { sessionId, until: this.now() + this.cache.ttlMs });
  }
}
