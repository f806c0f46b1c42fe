import type { Redis } from "ioredis";
import { keys } from "./keys";
import { registrationMac, verifyRegistration } from "./node-auth";

/**
 * How long a heartbeat keeps a node listed: three heartbeats (one per lease period), so one late or lost heartbeat
 * does not drop a live node. Gateways also keep a node they probe healthy this long after it went missing from the
 * registry (AiBalancer), since Redis can lose the registry (a restart without persistence, a failover).
 */
export function registrationTtlMs(heartbeatIntervalMs: number): number {
  return 3 * heartbeatIntervalMs;
}

export interface RegisteredAiNode {
  name: string;
  url: string;
}

/**
 * Dynamic membership: AI nodes announce themselves with a heartbeat (a zset score = expiry), gateways read the
 * live ones. A static list in the gateway's configuration works alongside it. Each member carries a MAC of its
 * name and URL under the cluster secret (docs/security.md "Node credentials"): a member written by anyone without
 * the secret is ignored and counted, never dispatched to.
 */
export class AiNodeRegistry {
  /** Members ignored by the last `live()` because their MAC was missing or wrong. */
  lastRefused = 0;

  constructor(
    private readonly redis: Redis,
    private readonly secret: string,
  ) {}

  private member(node: RegisteredAiNode): string {
    return JSON.stringify({ name: node.name, url: node.url, mac: registrationMac(this.secret, node.name, node.url) });
  }

  async heartbeat(node: RegisteredAiNode, ttlMs: number, now = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .zadd(keys.aiNodes(), now + ttlMs, this.member(node))
      .zremrangebyscore(keys.aiNodes(), "-inf", now)
      .exec();
  }

  async leave(node: RegisteredAiNode): Promise<void> {
    await this.redis.zrem(keys.aiNodes(), this.member(node));
  }

  async live(now = Date.now()): Promise<RegisteredAiNode[]> {
    // Bounded: a flood of members written by someone else costs one capped read, not unbounded memory.
    const members = await this.redis.zrangebyscore(keys.aiNodes(), now, "+inf", "LIMIT", 0, 1000);
    const nodes: RegisteredAiNode[] = [];
    let refused = 0;
    for (const member of members) {
      const parsed = parseMember(member);
      if (parsed && verifyRegistration(this.secret, parsed.name, parsed.url, parsed.mac)) {
        nodes.push({ name: parsed.name, url: parsed.url });
      } else {
        refused++;
      }
    }
    this.lastRefused = refused;
    return nodes;
  }
}

function parseMember(member: string): { name: string; url: string; mac: string } | undefined {
  try {
    const parsed = JSON.parse(member) as Record<string, unknown>;
    const { name, url, mac } = parsed;
    if (typeof name !== "string" || typeof url !== "string" || typeof mac !== "string") return undefined;
    if (!/^https?:\/\/[^/\s]+$/.test(url) || name.length === 0 || name.length > 64) return undefined;
    return { name, url, mac };
  } catch {
    return undefined;
  }
}
