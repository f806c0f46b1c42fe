import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AiNodeRegistry } from "./ai-registry";
import { keys } from "./keys";
import { registrationMac } from "./node-auth";
import { useTestRedis } from "./test-redis";

const redisOf = useTestRedis("test-registry", { beforeAll, afterAll });
const secret = "k".repeat(32);

describe("AiNodeRegistry: only nodes that hold the cluster secret are discovered", () => {
  it("lists a node that registered with the secret, and forgets it when it leaves", async () => {
    await redisOf().del(keys.aiNodes());
    const registry = new AiNodeRegistry(redisOf(), secret);
    await registry.heartbeat({ name: "ai-1", url: "http://127.0.0.1:7001" }, 10_000);
    expect(await registry.live()).toEqual([{ name: "ai-1", url: "http://127.0.0.1:7001" }]);
    expect(registry.lastRefused).toBe(0);
    await registry.leave({ name: "ai-1", url: "http://127.0.0.1:7001" });
    expect(await registry.live()).toEqual([]);
  });

  it("ignores and counts members written by anyone without the secret", async () => {
    await redisOf().del(keys.aiNodes());
    const registry = new AiNodeRegistry(redisOf(), secret);
    await registry.heartbeat({ name: "ai-1", url: "http://127.0.0.1:7001" }, 10_000);
    const expiry = Date.now() + 60_000;
    const forged = [
      // The old, unsigned form.
      JSON.stringify({ name: "evil", url: "http://attacker.example:80" }),
      // Signed with another secret.
      JSON.stringify({
        name: "evil",
        url: "http://attacker.example:80",
        mac: registrationMac("x".repeat(32), "evil", "http://attacker.example:80"),
      }),
      // A real node's MAC with another URL (binding name to URL).
      JSON.stringify({
        name: "ai-1",
        url: "http://attacker.example:80",
        mac: registrationMac(secret, "ai-1", "http://127.0.0.1:7001"),
      }),
      "not json",
    ];
    for (const member of forged) await redisOf().zadd(keys.aiNodes(), expiry, member);
    expect(await registry.live()).toEqual([{ name: "ai-1", url: "http://127.0.0.1:7001" }]);
    expect(registry.lastRefused).toBe(forged.length);
    // A node with another secret (another cluster sharing the Redis) is not ours either.
    expect(await new AiNodeRegistry(redisOf(), "y".repeat(32)).live()).toEqual([]);
  });
});
