import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  AiNodeRegistry,
  ChannelSubscriber,
  ConversationStore,
  channels,
  connectRedis,
  createLogger,
  isRedisReady,
  redisFromEnv,
  registrationTtlMs,
  StreamStore,
  storeOptionsFromEnv,
} from "@chatgrid/broker";
import { createEventProducer } from "@chatgrid/events";
import { serve } from "@hono/node-server";
import { createAiApp } from "./app";
import type { AiConfig } from "./config";
import { LeaseKeeper } from "./lease-keeper";
import { createAiMetrics } from "./metrics";
import { createProvider } from "./providers";
import type { Provider } from "./providers/provider";
import { type ClaimedRun, StreamRun } from "./stream-run";

export interface AiNode {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** Wires an AI node: Redis, provider, stream runs, lease keeper, cancel listener, registration, HTTP API. */
export async function startAiNode(config: AiConfig, provider: Provider = createProvider(config)): Promise<AiNode> {
  const log = createLogger(config.NODE_NAME);
  const metrics = createAiMetrics();
  const redis = redisFromEnv(config, `${config.NODE_NAME}:cmd`);
  const subRedis = redisFromEnv(config, `${config.NODE_NAME}:sub`, { autoResubscribe: false });
  redis.on("error", () => undefined); // reported through health and metrics; ioredis reconnects by itself
  subRedis.on("error", () => undefined);
  const events = createEventProducer(config, config.NODE_NAME, log, metrics.registry);
  const store = new StreamStore(redis, storeOptionsFromEnv(config));
  const conversations = new ConversationStore(redis, store);
  const registry = new AiNodeRegistry(redis, config.CLUSTER_SECRET);
  const runs = new Map<string, StreamRun>();
  let draining = false;

  const cancels = new ChannelSubscriber(subRedis, (_channel, streamId) => runs.get(streamId)?.stop("cancel"), log);
  const leases = new LeaseKeeper(runs, store, config.NODE_NAME, log, metrics);

  /** The prompt's budget, for the runs and for the prompt read beside a claim. */
  const context = { maxChars: config.CONTEXT_MAX_CHARS, maxMessages: config.CONTEXT_MAX_MESSAGES };
  const launch = (streamId: string, attempt: number, cancelRequested: boolean, claimed: ClaimedRun) => {
    const run = new StreamRun(streamId, attempt, {
      store,
      conversations,
      provider,
      node: config.NODE_NAME,
      coalesceMs: config.COALESCE_MS,
      publishRetryMs: config.PUBLISH_RETRY_MS,
      log,
      metrics,
      events,
      limits: {
        maxTokens: config.MAX_ANSWER_TOKENS,
        maxChars: config.MAX_ANSWER_CHARS,
        context,
      },
    });
    runs.get(streamId)?.stop("lost");
    runs.set(streamId, run);
    metrics.streamsRunning.set(runs.size);
    void run.run(cancelRequested, claimed).finally(() => {
      if (runs.get(streamId) === run) runs.delete(streamId);
      metrics.streamsRunning.set(runs.size);
    });
  };

  const app = createAiApp({
    node: config.NODE_NAME,
    store,
    metrics,
    providerName: provider.name,
    redisReady: () => isRedisReady(redis),
    draining: () => draining,
    running: () => runs.size,
    maxConcurrent: config.MAX_CONCURRENT_STREAMS,
    clusterSecret: config.CLUSTER_SECRET,
    log,
    readPrompt: (conversationId, userMessageId) => conversations.promptUpTo(conversationId, userMessageId, context),
    launch,
  });

  await Promise.all([connectRedis(redis), connectRedis(subRedis)]);
  await cancels.subscribe(channels.cancel());
  leases.start();

  const self = { name: config.NODE_NAME, url: config.publicUrl };
  const heartbeat = async () => {
    if (config.REGISTER && !draining) {
      await registry.heartbeat(self, registrationTtlMs(store.options.leaseMs)).catch(() => undefined);
    }
  };
  await heartbeat();
  // A Redis that came back may have lost the registry (a restart without persistence, a failover): announce at
  // once rather than at the next period, so gateways starting meanwhile find this node (docs/architecture.md).
  redis.on("ready", () => void heartbeat());
  const heartbeatTimer = setInterval(() => void heartbeat(), store.options.leaseMs);
  heartbeatTimer.unref();

  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(s as Server));
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, provider: provider.name, model: provider.model }, "AI node listening");

  return {
    port,
    url: `http://${config.HOST === "0.0.0.0" ? "127.0.0.1" : config.HOST}:${port}`,
    async stop() {
      // Drain: refuse new dispatches, give running streams a grace period, then hand the rest over.
      draining = true;
      clearInterval(heartbeatTimer);
      await registry.leave(self).catch(() => undefined);
      const deadline = Date.now() + config.SHUTDOWN_GRACE_MS;
      while (runs.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const remaining = [...runs.values()];
      for (const run of remaining) run.stop("shutdown");
      while (runs.size > 0) await new Promise((r) => setTimeout(r, 20));
      leases.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await events.stop(3000);
      redis.disconnect();
      subRedis.disconnect();
      log.info("AI node stopped");
    },
  };
}
