import type {
  ConversationStore,
  Logger,
  RateLimiter,
  RateLimiterLike,
  SessionStore,
  StreamSlots,
  StreamStore,
} from "@chatgrid/broker";
import type { EventProducer } from "@chatgrid/events";
import type { AiBalancer } from "../ai-balancer";
import type { GatewayMetrics } from "../metrics";

/** What the REST routes share. */
export interface ApiDeps {
  node: string;
  sessions: SessionStore;
  streams: StreamStore;
  conversations: ConversationStore;
  /** Authenticated REST calls per session (a RateLimiter: POST /api/chat runs its check inside StreamSlots.admit). */
  rateLimiter: RateLimiter;
  /** New sessions per client address (REST and WebSocket hello without a token). */
  sessionCreateLimiter: RateLimiterLike;
  /** Message characters per client address (the cost of a chat request is its message's length). */
  messageCharsLimiter: RateLimiter;
  /** Concurrent answers per session and per address. */
  slots: StreamSlots;
  /** The header that carries the client's address (see http/client-address.ts). */
  clientAddressHeader: string;
  balancer: AiBalancer;
  metrics: GatewayMetrics;
  log: Logger;
  events: EventProducer;
  redisReady: () => boolean;
}

/** Hono variables set by the auth middleware. */
export interface ApiEnv {
  Variables: { sessionId: string; clientAddress: string };
}
