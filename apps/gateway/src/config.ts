import { envBool, envInt, parseEnv, storeEnvSchema } from "@chatgrid/broker";
import { eventsEnvSchema } from "@chatgrid/events";
import { LIMITS } from "@chatgrid/protocol";
import { z } from "zod";

const gatewayEnvSchema = storeEnvSchema.extend(eventsEnvSchema.shape).extend({
  NODE_NAME: z.string().min(1).default("gateway-1"),
  HOST: z.string().default("127.0.0.1"),
  /** Public port: REST and WebSocket, behind nginx. */
  PORT: envInt(8081, 0),
  /** Internal port: /metrics and /health for operators and probes, never proxied by nginx. */
  METRICS_PORT: envInt(9081, 0),
  /** Static AI node list: `url,url` or `name=url,name=url` (names default to ai-1..M). */
  AI_SERVICE_URLS: z.string().default(""),
  /** Also use AI nodes that registered themselves in Redis. */
  AI_DISCOVERY: envBool(true),
  /** Allowed WebSocket/CORS origins, comma separated; same-origin requests are always allowed. */
  ALLOWED_ORIGINS: z.string().default("http://localhost:3000,http://127.0.0.1:3000"),
  SESSION_IDLE_TTL_MS: envInt(7 * 24 * 60 * 60 * 1000),
  /**
   * How long a gateway answers a token it resolved from memory (0: always ask Redis), and how many it keeps: a
   * session that ends in Redis stays usable here that long (docs/security.md "REST API (gateways)"). A minute: a
   * user's next message usually comes within it, so the token read leaves the first token's path. At most 5 min.
   */
  SESSION_CACHE_MS: envInt(60_000, 0, 300_000),
  SESSION_CACHE_MAX: envInt(10_000, 1, 1_000_000),
  /** Per-session token bucket on authenticated REST calls (cancel excepted): LIMIT per WINDOW, BURST at once. */
  SESSION_RATE_LIMIT: envInt(120),
  SESSION_RATE_WINDOW_MS: envInt(60_000),
  SESSION_RATE_BURST: envInt(30),
  /** Per client address: new sessions (POST /api/sessions and a hello without token), LIMIT per WINDOW, BURST. */
  SESSION_CREATE_RATE_LIMIT: envInt(30),
  SESSION_CREATE_RATE_WINDOW_MS: envInt(60_000),
  SESSION_CREATE_RATE_BURST: envInt(10),
  /** Message characters a client address may send (chat requests), LIMIT per WINDOW, BURST at once: bounds its writes. */
  MESSAGE_CHARS_PER_ADDRESS: envInt(100_000),
  MESSAGE_CHARS_WINDOW_MS: envInt(60_000),
  // At least the longest message, or that message could never be sent.
  MESSAGE_CHARS_BURST: envInt(64_000, LIMITS.messageMaxChars),
  /** Answers running at once per session and per client address, counted in Redis across gateways. */
  STREAMS_PER_SESSION: envInt(8),
  STREAMS_PER_ADDRESS: envInt(32),
  /** The header nginx sets to the client's address; empty: the TCP peer (docs/security.md "Who is an address"). */
  CLIENT_ADDRESS_HEADER: z.string().default("x-real-ip"),
  /** WebSocket frames a socket may send per second (sustained) before it is closed with 4429. */
  WS_FRAMES_PER_SECOND: envInt(20),
  WS_FRAME_BURST: envInt(60),
  /** Sockets of one session on one gateway; the next hello is closed with 4430 (docs/protocol.md "Close codes"). */
  WS_SOCKETS_PER_SESSION: envInt(16),
  /** Resumed streams per socket per second (burst: one full resume, MAX_RESUME_STREAMS) before close 4429. */
  WS_RESUMES_PER_SECOND: envInt(50),
  /** Bytes queued on a socket before it is closed with 4409 (slow consumer). */
  WS_SEND_BUFFER_BYTES: envInt(1024 * 1024),
  HELLO_TIMEOUT_MS: envInt(LIMITS.helloTimeoutMs),
  DISPATCH_TIMEOUT_MS: envInt(3000),
  AI_NODE_COOLDOWN_MS: envInt(5000),
  AI_PROBE_INTERVAL_MS: envInt(2000),
  TAKEOVER_SWEEP_MS: envInt(1000),
  STREAM_MAX_ATTEMPTS: envInt(3),
  SHUTDOWN_GRACE_MS: envInt(10_000, 0),
});

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export interface StaticAiNode {
  name: string;
  url: string;
}

export function parseAiServiceUrls(value: string): StaticAiNode[] {
  return value
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry, index) => {
      const eq = entry.indexOf("=");
      const [name, url] = eq > 0 ? [entry.slice(0, eq), entry.slice(eq + 1)] : [`ai-${index + 1}`, entry];
      if (!/^https?:\/\/[^/]+/.test(url))
        throw new Error(`invalid configuration:\n  AI_SERVICE_URLS: "${entry}" is not an http(s) URL`);
      return { name, url: url.replace(/\/+$/, "") };
    });
}

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env) {
  const parsed = parseEnv(gatewayEnvSchema, env);
  const aiNodes = parseAiServiceUrls(parsed.AI_SERVICE_URLS);
  const discovery = parsed.AI_DISCOVERY;
  if (aiNodes.length === 0 && !discovery) {
    throw new Error(
      "invalid configuration:\n  AI_SERVICE_URLS: empty while AI_DISCOVERY=false: the gateway would know no AI node",
    );
  }
  return {
    ...parsed,
    aiNodes,
    discovery,
    allowedOrigins: parsed.ALLOWED_ORIGINS.split(",")
      .map((o) => o.trim())
      .filter(Boolean),
  };
}
