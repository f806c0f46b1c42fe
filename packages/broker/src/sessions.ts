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
    const sessionId = await RESOLVE_SCRIPT.run<unknown>(
      this.redis,
      [keys.token(hashToken(token))],
      [this.idleTtlMs, keys.session("")],
    );
    return typeof sessionId === "string" && sessionId !== "" ? sessionId : undefined;
  }
}
