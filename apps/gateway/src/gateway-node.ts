import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  AiNodeRegistry,
  ChannelSubscriber,
  ConversationStore,
  connectRedis,
  createLogger,
  isRedisReady,
  RateLimiter,
  redisFromEnv,
  registrationTtlMs,
  SessionStore,
  StreamSlots,
  StreamStore,
  storeOptionsFromEnv,
} from "@chatgrid/broker";
import { createEventProducer } from "@chatgrid/events";
import { LIMITS } from "@chatgrid/protocol";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { AiBalancer } from "./ai-balancer";
import { registerGatewayRoutes } from "./app";
import type { GatewayConfig } from "./config";
import type { ApiDeps, ApiEnv } from "./http/context";
import { createGatewayMetrics } from "./metrics";
import { registerInternalHealthRoutes } from "./routes/health";
import { TakeoverSweeper } from "./takeover-sweeper";
import { channelDropReporter, SessionHub } from "./ws/session-hub";
import { SocketHandler, type SocketHandlerDeps } from "./ws/socket-handler";
import { createSocketUpgrade } from "./ws/upgrade";

export interface GatewayNode {
  readonly port: number;
  readonly metricsPort: number;
  stop(): Promise<void>;
}

async function listen(fetch: Hono["fetch"], port: number, hostname: string): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const server = serve({ fetch, port, hostname }, () => resolve(server as Server)) as Server;
    server.once("error", reject);
  });
}

/** Wires a gateway: Redis, stores, AI balancer, session hub, takeover sweeper, public and internal servers. */
export async function startGatewayNode(config: GatewayConfig): Promise<GatewayNode> {
  const node = config.NODE_NAME;
  const log = createLogger(node);
  const metrics = createGatewayMetrics();
  const redis = redisFromEnv(config, `${node}:cmd`);
  const subRedis = redisFromEnv(config, `${node}:sub`, { autoResubscribe: false });
  let redisWarned = false;
  const onRedisError = (error: Error) => {
    if (!redisWarned) log.warn({ err: error.message }, "Redis connection problem; reconnecting");
    redisWarned = true;
  };
  redis.on("error", onRedisError);
  subRedis.on("error", onRedisError);
  redis.on("ready", () => {
    if (redisWarned) log.info("Redis connection restored");
    redisWarned = false;
  });

  const events = createEventProducer(config, node, log, metrics.registry);
  const streams = new StreamStore(redis, storeOptionsFromEnv(config));
  const sessions = new SessionStore(redis, config.SESSION_IDLE_TTL_MS, {
    ttlMs: config.SESSION_CACHE_MS,
    maxEntries: config.SESSION_CACHE_MAX,
  });
  const conversations = new ConversationStore(redis, streams);
  const balancer = new AiBalancer({
    staticNodes: config.aiNodes,
    registry: config.discovery ? new AiNodeRegistry(redis, config.CLUSTER_SECRET) : undefined,
    missingGraceMs: registrationTtlMs(streams.options.leaseMs),
    dispatchTimeoutMs: config.DISPATCH_TIMEOUT_MS,
    clusterSecret: config.CLUSTER_SECRET,
    cooldownMs: config.AI_NODE_COOLDOWN_MS,
    probeIntervalMs: config.AI_PROBE_INTERVAL_MS,
    log,
    metrics,
    onHealthChange: (ai, healthy, reason) =>
      events.emit(
        healthy
          ? { type: "ai_node.up", aiNode: ai.name, url: ai.url }
          : { type: "ai_node.down", aiNode: ai.name, url: ai.url, reason: reason ?? "unknown" },
      ),
  });
  const hub = new SessionHub({ dropped: channelDropReporter(metrics, log) });
  const subscriber = new ChannelSubscriber(subRedis, (channel, message) => hub.onChannelMessage(channel, message), log);
  hub.attach(subscriber);
  const redisReady = () => isRedisReady(redis) && subscriber.ready;

  const deps: ApiDeps = {
    node,
    sessions,
    streams,
    conversations,
    rateLimiter: new RateLimiter(redis, "session", {
      rate: config.SESSION_RATE_LIMIT,
      periodMs: config.SESSION_RATE_WINDOW_MS,
      burst: config.SESSION_RATE_BURST,
    }),
    sessionCreateLimiter: new RateLimiter(redis, "create", {
      rate: config.SESSION_CREATE_RATE_LIMIT,
      periodMs: config.SESSION_CREATE_RATE_WINDOW_MS,
      burst: config.SESSION_CREATE_RATE_BURST,
    }),
    messageCharsLimiter: new RateLimiter(redis, "chars", {
      rate: config.MESSAGE_CHARS_PER_ADDRESS,
      periodMs: config.MESSAGE_CHARS_WINDOW_MS,
      burst: config.MESSAGE_CHARS_BURST,
    }),
    slots: new StreamSlots(
      redis,
      { perSession: config.STREAMS_PER_SESSION, perAddress: config.STREAMS_PER_ADDRESS },
      streams.options.maxDurationMs,
    ),
    clientAddressHeader: config.CLIENT_ADDRESS_HEADER,
    balancer,
    metrics,
    log,
    events,
    redisReady,
  };

  // One for every socket: a socket holds its handler and not much more (docs/benchmarks.md).
  const socketDeps: SocketHandlerDeps = {
    node,
    sessions,
    streams,
    hub,
    metrics,
    log,
    events,
    sessionCreateLimiter: deps.sessionCreateLimiter,
    helloTimeoutMs: config.HELLO_TIMEOUT_MS,
    sendBufferBytes: config.WS_SEND_BUFFER_BYTES,
    framesPerSecond: config.WS_FRAMES_PER_SECOND,
    frameBurst: config.WS_FRAME_BURST,
    socketsPerSession: config.WS_SOCKETS_PER_SESSION,
    resumesPerSecond: config.WS_RESUMES_PER_SECOND,
  };
  const app = new Hono<ApiEnv>();
  const sockets = createSocketUpgrade(app, {
    // Client frames are at most 64 KiB; ws closes a socket that sends more with 1009.
    maxPayload: LIMITS.maxFrameBytes,
    onSocket: (ws, client) => new SocketHandler(ws, socketDeps, client),
    onError: (error) => log.error({ err: error }, "socket handler failed"),
  });
  registerGatewayRoutes(app, deps, redis, {
    allowedOrigins: config.allowedOrigins,
    acceptSocket: sockets.accept,
  });

  const internal = new Hono();
  registerInternalHealthRoutes(internal, deps);
  internal.get("/metrics", async (c) => {
    metrics.redisUp.set(redisReady() ? 1 : 0);
    metrics.sessionsActive.set(hub.sessionCount);
    return c.text(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType });
  });

  await Promise.all([connectRedis(redis), connectRedis(subRedis)]);
  balancer.start();
  const sweeper = new TakeoverSweeper({
    store: streams,
    balancer,
    intervalMs: config.TAKEOVER_SWEEP_MS,
    maxAttempts: config.STREAM_MAX_ATTEMPTS,
    log,
    metrics,
    events,
  });
  sweeper.start();

  const server = await listen(app.fetch, config.PORT, config.HOST);
  sockets.inject(server);
  const metricsServer = await listen(internal.fetch, config.METRICS_PORT, config.HOST);
  const port = (server.address() as AddressInfo).port;
  const metricsPort = (metricsServer.address() as AddressInfo).port;
  log.info({ port, metricsPort, aiNodes: config.aiNodes.length, discovery: config.discovery }, "gateway listening");

  return {
    port,
    metricsPort,
    async stop() {
      // Stop accepting, tell every client to reconnect elsewhere (1012), let in-flight REST calls finish.
      sweeper.stop();
      balancer.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const handler of [...sockets.open()]) handler.restart();
      server.closeIdleConnections();
      const grace = setTimeout(() => {
        for (const ws of sockets.wss.clients) ws.terminate();
        server.closeAllConnections();
      }, config.SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(grace);
      balancer.close();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      metricsServer.closeAllConnections();
      await events.stop(3000);
      redis.disconnect();
      subRedis.disconnect();
      log.info("gateway stopped");
    },
  };
}
