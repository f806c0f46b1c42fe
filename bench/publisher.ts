/**
 * The publisher process of the benchmark (docs/benchmarks.md, "Method"): it plays the AI nodes. Every stream
 * publishes at `rate` chunks per second with its own phase (stream i of S starts i/S of an interval after stream
 * 0), so the whole load is spread evenly in time; the process wakes at most once a millisecond and sends what is
 * due. Each chunk carries its send time (CLOCK_MONOTONIC, ms) as its text.
 *  - bare: PUBLISH of the frame to the stream's channel;
 *  - socketio: the Redis adapter's emitter (@socket.io/redis-emitter), `to(room).emit("chunk", …)`;
 *  - chatgrid: the AI node's own append (StreamStore.append: the fenced Lua script, history kept, then PUBLISH).
 */
import { StreamStore } from "@chatgrid/broker";
import { Emitter } from "@socket.io/redis-emitter";
import { Redis } from "ioredis";
import { serveRequests } from "./ipc";
import type { PublisherPrimeRequest, PublisherReport, PublisherRunRequest, StreamSpec, SystemName } from "./protocol";
import { Histogram, nowMs } from "./stats";

let system: SystemName = "bare";
let streams: StreamSpec[] = [];
let redis: Redis | undefined;
let publishOne: (stream: StreamSpec, seq: number, stamp: string) => Promise<unknown> = async () => undefined;

const failures: Record<string, number> = {};
const fail = (reason: string) => {
  failures[reason] = (failures[reason] ?? 0) + 1;
};

async function prime(request: PublisherPrimeRequest): Promise<{ primed: number }> {
  system = request.system;
  streams = request.streams;
  // No command timeout: under overload the publisher waits (latency shows it) rather than dropping chunks.
  redis = new Redis(request.redisUrl, { password: request.redisPassword, connectionName: "bench-publisher" });
  await redis.ping();
  const client = redis;
  switch (system) {
    case "bare":
      publishOne = (stream, seq, stamp) =>
        client.publish(
          stream.channel,
          `{"type":"chunk","streamId":"${stream.streamId}","seq":${seq},"delta":"${stamp}"}`,
        );
      break;
    case "socketio": {
      const emitter = new Emitter(client);
      publishOne = async (stream, seq, stamp) => {
        emitter.to(stream.channel).emit("chunk", { streamId: stream.streamId, seq, delta: stamp });
      };
      break;
    }
    case "chatgrid": {
      const store = new StreamStore(client);
      publishOne = async (stream, seq, stamp) => {
        const outcome = await store.append(stream.streamId, 1, stream.sessionId!, seq, { kind: "chunk", delta: stamp });
        if (!outcome.ok) fail(outcome.reason);
      };
      // The stream's `start` (seq 0), as the AI node writes it once it has claimed the stream (awaited: it also
      // loads the script, so the pipelined EVALSHAs of the run never fall back to EVAL).
      for (let i = 0; i < streams.length; i += 200) {
        await Promise.all(
          streams.slice(i, i + 200).map(async (stream) => {
            const outcome = await store.append(stream.streamId, 1, stream.sessionId!, 0, {
              kind: "start",
              conversationId: stream.conversationId!,
              messageId: stream.messageId!,
              aiNode: "bench-publisher",
            });
            if (!outcome.ok) throw new Error(`start of ${stream.streamId}: ${outcome.reason}`);
          }),
        );
      }
      break;
    }
  }
  return { primed: streams.length };
}

/** Publishes every seq of every stream on schedule; resolves once Redis has answered every publish. */
async function run(request: PublisherRunRequest): Promise<PublisherReport> {
  if (!redis) throw new Error("run before prime");
  const count = streams.length;
  const perStream = request.range.warmupSeqs + request.range.measuredSeqs;
  const total = count * perStream;
  const interval = 1000 / (count * request.rate);
  const lag = new Histogram();
  let next = 0;
  let pending = 0;
  let allSent: () => void = () => undefined;
  const sent = new Promise<void>((resolve) => {
    allSent = resolve;
  });
  const settle = () => {
    pending--;
  };
  const tick = () => {
    const now = nowMs();
    while (next < total) {
      const due = request.t0 + next * interval;
      if (due > now) break;
      const stream = streams[next % count]!;
      const seq = Math.floor(next / count) + 1;
      const at = nowMs();
      lag.add(at - due);
      pending++;
      publishOne(stream, seq, at.toFixed(3)).then(settle, (error: unknown) => {
        settle();
        fail(error instanceof Error ? error.message.split("\n")[0]! : String(error));
      });
      next++;
    }
    if (next >= total) {
      allSent();
      return;
    }
    setTimeout(tick, Math.max(1, request.t0 + next * interval - nowMs()));
  };
  setTimeout(tick, Math.max(0, request.t0 - nowMs()));
  await sent;
  // Commands on one connection are answered in order: once PING is back, every publish before it was handled.
  await redis.ping();
  while (pending > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  return {
    published: total,
    failures: { ...failures },
    lagP99Ms: lag.percentile(99),
    lagMaxMs: lag.max,
  };
}

serveRequests({ prime, run });
