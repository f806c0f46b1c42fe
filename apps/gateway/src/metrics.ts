import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";

/** The gateway's Prometheus metrics; label sets are small and fixed (no per-stream or per-session labels). */
export function createGatewayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "chatgrid_gateway_process_" });
  const registers = [registry];
  return {
    registry,
    socketsOpen: new Gauge({ name: "chatgrid_sockets_open", help: "Open WebSockets", registers }),
    sessionsActive: new Gauge({
      name: "chatgrid_sessions_active",
      help: "Sessions with a socket on this gateway",
      registers,
    }),
    restRequests: new Counter({
      name: "chatgrid_rest_requests_total",
      help: "REST requests by route and status",
      labelNames: ["route", "status"] as const,
      registers,
    }),
    chunksDelivered: new Counter({
      name: "chatgrid_chunks_delivered_total",
      help: "Stream events sent to sockets",
      registers,
    }),
    resumeRequests: new Counter({
      name: "chatgrid_resume_requests_total",
      help: "Streams resumed by clients",
      registers,
    }),
    replayedEvents: new Counter({
      name: "chatgrid_replayed_events_total",
      help: "Events sent from history",
      registers,
    }),
    gapsFilled: new Counter({ name: "chatgrid_gaps_filled_total", help: "Live gaps filled from history", registers }),
    snapshotsSent: new Counter({
      name: "chatgrid_snapshots_sent_total",
      help: "Snapshots sent for expired history",
      registers,
    }),
    slowConsumerCloses: new Counter({
      name: "chatgrid_slow_consumer_closes_total",
      help: "Sockets closed with 4409",
      registers,
    }),
    aiNodeHealthy: new Gauge({
      name: "chatgrid_ai_node_healthy",
      help: "1 when this gateway considers the AI node healthy",
      labelNames: ["node"] as const,
      registers,
    }),
    limitRefusals: new Counter({
      name: "chatgrid_limit_refusals_total",
      help: "Requests and sockets refused by a limit (session_rate, session_create, streams_session, streams_address, sockets_session, resume_rate)",
      labelNames: ["limit"] as const,
      registers,
    }),
    channelMessagesDropped: new Counter({
      name: "chatgrid_channel_messages_dropped_total",
      help: "Session channel messages not forwarded to sockets because they were not a well-formed event of their stream, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    historyReadFailures: new Counter({
      name: "chatgrid_history_read_failures_total",
      help: "Resumes and gap fills whose history read failed (the client got error unavailable; the detail is logged)",
      registers,
    }),
    aiRegistrationsRefused: new Gauge({
      name: "chatgrid_ai_registrations_refused",
      help: "AI node registrations in Redis ignored at the last refresh (no valid MAC: not written by a node)",
      registers,
    }),
    dispatches: new Counter({
      name: "chatgrid_dispatches_total",
      help: "Stream dispatches by result (accepted, no_ai_node)",
      labelNames: ["result"] as const,
      registers,
    }),
    dispatchRetries: new Counter({
      name: "chatgrid_dispatch_retries_total",
      help: "Dispatch tries moved to the next AI node",
      registers,
    }),
    takeovers: new Counter({
      name: "chatgrid_takeovers_total",
      help: "Streams whose lease lapsed, by what this gateway did",
      labelNames: ["result"] as const,
      registers,
    }),
    redisUp: new Gauge({
      name: "chatgrid_redis_up",
      help: "1 when this node's Redis connections are ready",
      registers,
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
