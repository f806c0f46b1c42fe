import type { ConversationStore, Logger, SessionRateLimiter, SessionStore, StreamStore } from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import type { AiBalancer } from "../ai-balancer";
import type { GatewayMetrics } from "../metrics";

/** What the REST routes share. */
export interface ApiDeps {
  node: string;
  sessions: SessionStore;
  streams: StreamStore;
  conversations: ConversationStore;
  rateLimiter: SessionRateLimiter;
  balancer: AiBalancer;
  metrics: GatewayMetrics;
  log: Logger;
  events: EventProducer;
  redisReady: () => boolean;
}

/** Hono variables set by the auth middleware. */
export interface ApiEnv {
  Variables: { sessionId: string };
}
