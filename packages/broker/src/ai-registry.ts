import type { Redis } from "ioredis";
import { keys } from "./keys";

export interface RegisteredAiNode {
  name: string;
  url: string;
}

/**
 * Dynamic membership: AI nodes announce themselves with a heartbeat (a zset score = expiry), gateways read the
 * live ones. A static list in the gateway's configuration works alongside it.
 */
export class AiNodeRegistry {
  constructor(private readonly redis: Redis) {}

  async heartbeat(node: RegisteredAiNode, ttlMs: number, now = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .zadd(keys.aiNodes(), now + ttlMs, JSON.stringify({ name: node.name, url: node.url }))
      .zremrangebyscore(keys.aiNodes(), "-inf", now)
      .exec();
  }

  async leave(node: RegisteredAiNode): Promise<void> {
    await this.redis.zrem(keys.aiNodes(), JSON.stringify({ name: node.name, url: node.url }));
  }

  async live(now = Date.now()): Promise<RegisteredAiNode[]> {
    const members = await this.redis.zrangebyscore(keys.aiNodes(), now, "+inf");
    const nodes: RegisteredAiNode[] = [];
    for (const member of members) {
      try {
        const parsed = JSON.parse(member) as Partial<RegisteredAiNode>;
        if (typeof parsed.name === "string" && typeof parsed.url === "string")
          nodes.push({ name: parsed.name, url: parsed.url });
      } catch {
        // A foreign member in our key is ignored rather than trusted.
      }
    }
    return nodes;
  }
}
