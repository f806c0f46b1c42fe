import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken, newToken } from "./ids";
import { keys } from "./keys";
import { SessionStore } from "./sessions";
import { useTestRedis } from "./test-redis";

const redisOf = useTestRedis("test-sessions", { beforeAll, afterAll });

describe("SessionStore.resolve (one script: the token's session, both idle timeouts refreshed)", () => {
  it("gives the token's session and refreshes the token's and the session's idle timeout", async () => {
    const sessions = new SessionStore(redisOf(), 60_000);
    const { sessionId, token } = await sessions.create();
    const tokenKey = keys.token(hashToken(token));
    await redisOf().pexpire(tokenKey, 1000);
    await redisOf().pexpire(keys.session(sessionId), 1000);
    expect(await sessions.resolve(token)).toBe(sessionId);
    expect(await redisOf().pttl(tokenKey)).toBeGreaterThan(50_000);
    expect(await redisOf().pttl(keys.session(sessionId))).toBeGreaterThan(50_000);
    expect(await redisOf().hget(keys.session(sessionId), "createdAt")).not.toBeNull();
  });

  it("an unknown, expired or malformed token has no session, and creates or refreshes nothing", async () => {
    const sessions = new SessionStore(redisOf(), 60_000);
    const unknown = newToken();
    expect(await sessions.resolve(unknown)).toBeUndefined();
    expect(await redisOf().exists(keys.token(hashToken(unknown)))).toBe(0);

    const { sessionId, token } = await sessions.create();
    await redisOf().del(keys.token(hashToken(token)));
    await redisOf().pexpire(keys.session(sessionId), 1000);
    expect(await sessions.resolve(token)).toBeUndefined();
    expect(await redisOf().pttl(keys.session(sessionId))).toBeLessThanOrEqual(1000);

    expect(await sessions.resolve("not a token")).toBeUndefined();
    expect(await sessions.resolve("")).toBeUndefined();
  });

  it("a token whose session hash is gone still resolves (as before), without creating the hash", async () => {
    const sessions = new SessionStore(redisOf(), 60_000);
    const { sessionId, token } = await sessions.create();
    await redisOf().del(keys.session(sessionId));
    expect(await sessions.resolve(token)).toBe(sessionId);
    expect(await redisOf().exists(keys.session(sessionId))).toBe(0);
  });
});

describe("SessionStore.resolve with a cache (SESSION_CACHE_MS, SESSION_CACHE_MAX)", () => {
  const clock = () => {
    let now = 1_000;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  };

  it("answers a token it resolved within the TTL without Redis, and asks Redis again after it", async () => {
    const time = clock();
    const sessions = new SessionStore(redisOf(), 60_000, { ttlMs: 5000, maxEntries: 10, now: time.now });
    const { sessionId, token } = await sessions.create();
    expect(await sessions.resolve(token)).toBe(sessionId);
    // Gone from Redis: the cached answer holds for the TTL, and only for it.
    await redisOf().del(keys.token(hashToken(token)));
    time.advance(4999);
    expect(await sessions.resolve(token)).toBe(sessionId);
    time.advance(1);
    expect(await sessions.resolve(token)).toBeUndefined();
  });

  it("never caches an unknown token: it is asked of Redis every time", async () => {
    const time = clock();
    const sessions = new SessionStore(redisOf(), 60_000, { ttlMs: 5000, maxEntries: 10, now: time.now });
    const other = new SessionStore(redisOf(), 60_000);
    const { sessionId, token } = await other.create();
    const tokenKey = keys.token(hashToken(token));
    await redisOf().rename(tokenKey, `${tokenKey}:away`);
    expect(await sessions.resolve(token)).toBeUndefined();
    await redisOf().rename(`${tokenKey}:away`, tokenKey);
    expect(await sessions.resolve(token)).toBe(sessionId);
  });

  it("an attacker's many valid tokens keep at most maxEntries: the oldest goes first", async () => {
    const time = clock();
    const sessions = new SessionStore(redisOf(), 60_000, { ttlMs: 5000, maxEntries: 2, now: time.now });
    const made = [await sessions.create(), await sessions.create(), await sessions.create()];
    for (const { token } of made) await sessions.resolve(token);
    for (const { token } of made) await redisOf().del(keys.token(hashToken(token)));
    // The first was pushed out by the third; the last two are still held.
    expect(await sessions.resolve(made[0]!.token)).toBeUndefined();
    expect(await sessions.resolve(made[1]!.token)).toBe(made[1]!.sessionId);
    expect(await sessions.resolve(made[2]!.token)).toBe(made[2]!.sessionId);
  });

  it("refuses a TTL or size that is not a whole number, with the setting in the message", () => {
    expect(() => new SessionStore(redisOf(), 60_000, { ttlMs: -1, maxEntries: 10 })).toThrow(
      "SessionStore: cache.ttlMs must be a whole number of ms ≥ 0, got -1",
    );
    expect(() => new SessionStore(redisOf(), 60_000, { ttlMs: 10, maxEntries: 0 })).toThrow(
      "SessionStore: cache.maxEntries must be a positive whole number, got 0",
    );
  });
});
