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
