import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** The AI node's Prometheus metrics. Counters without per-stream labels: the hot path stays allocation-light. */
export function createAiMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "chatgrid_ai_process_" });
  const registers = [registry];
  return {
    registry,
    streamsRunning: new Gauge({ name: "chatgrid_ai_streams_running", help: "Streams this node runs now", registers }),
    dispatches: new Counter({
      name: "chatgrid_ai_dispatches_total",
      help: "Dispatch requests by result",
      labelNames: ["result"] as const,
      registers,
    }),
    unauthorizedDispatches: new Counter({
      name: "chatgrid_ai_unauthorized_dispatches_total",
      help: "Dispatch calls refused with 401, by why (missing, malformed, stale, bad_signature)",
      labelNames: ["reason"] as const,
      registers,
    }),
    streamsFinished: new Counter({
      name: "chatgrid_ai_streams_finished_total",
      help: "Stream runs ended, by outcome (stop, length, timeout, cancelled, error, lost, released, abandoned)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    streamFailures: new Counter({
      name: "chatgrid_ai_stream_failures_total",
      help: "Answers ended with an error, by code (provider_error, provider_rate_limited, provider_incomplete, provider_timeout, internal_error)",
      labelNames: ["code"] as const,
      registers,
    }),
    httpErrors: new Counter({
      name: "chatgrid_ai_http_internal_errors_total",
      help: "Internal API requests that failed unexpectedly (answered 500 internal_error; the detail is logged)",
      registers,
    }),
    answerBounds: new Counter({
      name: "chatgrid_ai_answer_bounds_total",
      help: "Answers stopped at a bound, by which (tokens, chars, duration)",
      labelNames: ["bound"] as const,
      registers,
    }),
    chunksPublished: new Counter({
      name: "chatgrid_ai_chunks_published_total",
      help: "Chunks appended and published",
      registers,
    }),
    publishRetries: new Counter({
      name: "chatgrid_ai_publish_retries_total",
      help: "Appends retried while Redis was away",
      registers,
    }),
    leaseRenewals: new Counter({
      name: "chatgrid_ai_lease_renewals_total",
      help: "Lease renewals by result",
      labelNames: ["result"] as const,
      registers,
    }),
    streamDuration: new Histogram({
      name: "chatgrid_ai_stream_duration_seconds",
      help: "Duration of a stream run",
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    timeToFirstChunk: new Histogram({
      name: "chatgrid_ai_time_to_first_chunk_seconds",
      help: "From claim to the first chunk published",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    }),
    redisUp: new Gauge({ name: "chatgrid_redis_up", help: "1 when this node's Redis connection is ready", registers }),
  };
}
export type AiMetrics = ReturnType<typeof createAiMetrics>;
