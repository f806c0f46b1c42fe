import type { Redis } from "ioredis";
import { hashToken, isWellFormedToken, newId, newToken } from "./ids";
import { keys } from "./keys";

/** Sessions: a random 256-bit token for the client, only its SHA-256 in Redis, expiring after idle time. */
export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly idleTtlMs: number,
  ) {}

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

  /** The session of a token, refreshing its idle timeout; undefined for a malformed, unknown or expired token. */
  async resolve(token: string): Promise<string | undefined> {
    if (!isWellFormedToken(token)) return undefined;
    const tokenKey = keys.token(hashToken(token));
    const sessionId = await this.redis.get(tokenKey);
    if (!sessionId) return undefined;
    await this.redis.multi().pexpire(tokenKey, this.idleTtlMs).pexpire(keys.session(sessionId), this.idleTtlMs).exec();
    return sessionId;
  }
}
