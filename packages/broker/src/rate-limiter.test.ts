import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "./ids";
import { RateLimiter } from "./rate-limiter";
import { useTestRedis } from "./test-redis";

const redisOf = useTestRedis("test-rate", { beforeAll, afterAll });

async function admitted(limiter: RateLimiter, id: string, tries: number): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < tries; i++) if ((await limiter.check(id)).allowed) allowed++;
  return allowed;
}

describe("RateLimiter (GCRA token bucket in one Redis call)", () => {
  it("admits the burst at once, then refuses with a Retry-After that matches the rate", async () => {
    const limiter = new RateLimiter(redisOf(), "test", { rate: 10, periodMs: 10_000, burst: 5 });
    const id = newId("sess");
    expect(await admitted(limiter, id, 20)).toBe(5);
    const refused = await limiter.check(id);
    expect(refused).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });

  it("does not admit twice its limit across what would be a fixed window's edge", async () => {
    // A fixed window of 1 s with limit 20 admits 20 at 0.95 s and 20 more at 1.05 s. The bucket (rate 20/s,
    // burst 20) admits the first 20, then only what 0.1 s refills (2), never another 20.
    const limiter = new RateLimiter(redisOf(), "test", { rate: 20, periodMs: 1000, burst: 20 });
    const id = newId("sess");
    expect(await admitted(limiter, id, 40)).toBe(20);
    const start = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 100)); // the time span under test, not synchronisation
    const later = await admitted(limiter, id, 40);
    const elapsed = (Date.now() - start) / 1000;
    expect(later).toBeGreaterThanOrEqual(1);
    expect(later).toBeLessThanOrEqual(Math.ceil(elapsed * 20) + 1);
  });

  it("charges a cost of several tokens at once, and refuses a cost above what is left without charging", async () => {
    const limiter = new RateLimiter(redisOf(), "test", { rate: 1, periodMs: 60_000, burst: 10 });
    const id = newId("sess");
    expect((await limiter.check(id, 7)).allowed).toBe(true);
    expect((await limiter.check(id, 7)).allowed).toBe(false);
    // Nothing was charged by the refusal: the 3 left are still there.
    expect((await limiter.check(id, 3)).allowed).toBe(true);
    expect((await limiter.check(id, 1)).allowed).toBe(false);
  });

  it("keeps ids and scopes apart, and its key expires once the bucket is full again", async () => {
    const a = new RateLimiter(redisOf(), "a", { rate: 1, periodMs: 1000, burst: 1 });
    const b = new RateLimiter(redisOf(), "b", { rate: 1, periodMs: 1000, burst: 1 });
    const id = newId("sess");
    expect((await a.check(id)).allowed).toBe(true);
    expect((await a.check(id)).allowed).toBe(false);
    expect((await a.check(`${id}-other`)).allowed).toBe(true);
    expect((await b.check(id)).allowed).toBe(true);
    const ttl = await redisOf().pttl(`cg:rl:a:${id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1001);
  });

  it("refuses a limit that cannot work", () => {
    expect(() => new RateLimiter(redisOf(), "x", { rate: 0, periodMs: 1000, burst: 1 })).toThrow(
      "RateLimiter x: rate, periodMs must be > 0 and burst >= 1",
    );
  });
});
