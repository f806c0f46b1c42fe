/**
 * What one chunk costs Redis, by what Redis does for it (docs/benchmarks.md "Redis per chunk, by what it does").
 * One Redis as the runner runs it (AOF everysec, its redis.conf), one subscriber on every stream's channel, and the
 * same load for each variant (S streams at r chunks/s, spread evenly); Redis's CPU per chunk from its own accounting
 * (INFO cpu, µs resolution):
 *  - publish:          PUBLISH only (what the bare relay and Socket.IO's emitter pay per chunk);
 *  - xadd+publish:     a pipelined XADD of the frame (MAXLEN ~) and a PUBLISH, no script, no checks: a chunk kept
 *                      in a Redis stream as its history (chatgrid's chunks until its text list became their history,
 *                      docs/benchmarks.md "Changes, before and after", 14) and delivered;
 *  - script, 1 per call:  chatgrid's chunk script through StreamStore.append, one chunk per call (APPEND_BATCH_MAX=1);
 *  - script, batched:     the same with the default batch (the AI node's path).
 * The variants run one after another on fresh Redis servers, in rounds, so a drift of the machine spreads over all.
 *
 *   node --import tsx bench/redis-floor.ts [--streams 500] [--rate 20] [--seconds 8] [--rounds 3]
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConversationStore, channels, keys, StreamStore } from "@chatgrid/broker";
import { Redis } from "ioredis";
import {
  binaryPath,
  DEFAULT_REDIS_MAXMEMORY,
  ensureBinaries,
  freePorts,
  redisPing,
  renderRedisConf,
  SupervisedProcess,
} from "../infra/runner";
import { nowMs, round, summarize } from "./stats";

export const FLOOR_VARIANTS = ["publish", "xadd+publish", "script, 1 per call", "script, batched"] as const;
export type FloorVariant = (typeof FLOOR_VARIANTS)[number];

export interface FloorOptions {
  streams: number;
  rate: number;
  seconds: number;
  rounds: number;
}

export const FLOOR_DEFAULTS: FloorOptions = { streams: 500, rate: 20, seconds: 8, rounds: 3 };

export interface FloorResult {
  variant: FloorVariant;
  /** Redis CPU (/proc, main process and ended children) per chunk, µs, per round. */
  usPerChunk: number[];
  median: number;
  min: number;
  max: number;
}

interface FloorRedis {
  client: Redis;
  subscriber: Redis;
  stop(): Promise<void>;
}

async function startRedis(): Promise<FloorRedis> {
  ensureBinaries(["redis-server"]);
  const dir = mkdtempSync(join(tmpdir(), "chatgrid-redis-floor-"));
  const redisDir = join(dir, "redis");
  mkdirSync(redisDir, { mode: 0o700 });
  const [port] = await freePorts(1);
  const password = randomBytes(24).toString("hex");
  const confFile = join(redisDir, "redis.conf");
  writeFileSync(
    confFile,
    renderRedisConf({ port: port!, dir: redisDir, password, maxmemory: DEFAULT_REDIS_MAXMEMORY }),
    { mode: 0o600 },
  );
  const server = new SupervisedProcess(
    {
      name: "redis",
      role: "redis",
      command: binaryPath("redis-server"),
      args: [confFile],
      cwd: redisDir,
      port: port!,
      url: `http://127.0.0.1:${port}`,
      healthy: () => redisPing("127.0.0.1", port!, password),
      logFile: join(dir, "redis.log"),
      startTimeoutMs: 30_000,
    },
    { enabled: false, initialDelayMs: 0, maxDelayMs: 0, resetAfterMs: 0 },
  );
  await server.start();
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { password, connectionName: "floor-publisher" });
  const subscriber = new Redis(url, { password, connectionName: "floor-subscriber" });
  await Promise.all([client.ping(), subscriber.ping()]);
  return {
    client,
    subscriber,
    stop: async () => {
      client.disconnect();
      subscriber.disconnect();
      await server.stop(3000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends every chunk of the load on schedule through `send`; resolves when Redis has answered all of them. */
async function drive(options: FloorOptions, send: (stream: number, seq: number) => Promise<unknown>): Promise<number> {
  const total = options.streams * options.rate * options.seconds;
  const interval = 1000 / (options.streams * options.rate);
  const t0 = nowMs() + 20;
  const inFlight: Promise<unknown>[] = [];
  let next = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = nowMs();
      while (next < total && t0 + next * interval <= now) {
        inFlight.push(send(next % options.streams, Math.floor(next / options.streams) + 1));
        next++;
      }
      if (next >= total) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(inFlight);
  return total;
}

/** Redis's CPU so far, µs, from its own accounting (INFO cpu: getrusage of the server and its ended children). */
async function redisCpuUs(client: Redis): Promise<number> {
  const info = await client.info("cpu");
  const field = (name: string) => {
    const value = Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1]);
    if (!Number.isFinite(value)) throw new Error(`INFO cpu has no ${name}`);
    return value;
  };
  const seconds =
    field("used_cpu_sys") + field("used_cpu_user") + field("used_cpu_sys_children") + field("used_cpu_user_children");
  return seconds * 1e6;
}

async function measure(variant: FloorVariant, options: FloorOptions): Promise<number> {
  const redis = await startRedis();
  try {
    const store = new StreamStore(redis.client, { maxChunkBatch: variant === "script, 1 per call" ? 1 : 64 });
    const conversations = new ConversationStore(redis.client, store);
    const streams: { streamId: string; sessionId: string }[] = [];
    for (let i = 0; i < options.streams; i++) {
      const sessionId = `sess_floor${i}`;
      const turn = await conversations.beginTurn(sessionId, "hello");
      await store.claim(turn.streamId, 1, "floor");
      const start = { kind: "start", conversationId: turn.conversationId, messageId: "m", aiNode: "floor" } as const;
      await store.append(turn.streamId, 1, sessionId, 0, start);
      streams.push({ streamId: turn.streamId, sessionId });
    }
    const expected = options.streams * options.rate * options.seconds;
    let received = 0;
    let allReceived: () => void = () => undefined;
    const delivered = new Promise<void>((resolve) => {
      allReceived = resolve;
    });
    redis.subscriber.on("messageBuffer", () => {
      if (++received === expected) allReceived();
    });
    const names = streams.map((s) => channels.session(s.sessionId));
    for (let i = 0; i < names.length; i += 500) await redis.subscriber.subscribe(...names.slice(i, i + 500));
    const frame = (streamId: string, seq: number) =>
      `{"type":"chunk","streamId":"${streamId}","seq":${seq},"delta":"${nowMs().toFixed(3)}"}`;
    const send: (stream: number, seq: number) => Promise<unknown> =
      variant === "publish"
        ? (i, seq) => redis.client.publish(names[i]!, frame(streams[i]!.streamId, seq))
        : variant === "xadd+publish"
          ? (i, seq) => {
              const { streamId } = streams[i]!;
              const f = frame(streamId, seq);
              void redis.client.xadd(keys.streamEvents(streamId), "MAXLEN", "~", 10_000, `0-${seq + 1}`, "f", f);
              return redis.client.publish(names[i]!, f);
            }
          : async (i, seq) => {
              const { streamId, sessionId } = streams[i]!;
              const outcome = await store.append(streamId, 1, sessionId, seq, { kind: "chunk", delta: "0.000" });
              if (!outcome.ok) throw new Error(`chunk refused: ${outcome.reason}`);
            };
    const before = await redisCpuUs(redis.client);
    const chunks = await drive(options, send);
    await redis.client.ping();
    const usedUs = (await redisCpuUs(redis.client)) - before;
    // Every chunk reached the subscriber (what Redis spent delivering it is in the figure), or the run is void.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      delivered,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the subscriber got ${received} of ${chunks} chunks`)), 5000);
      }),
    ]).finally(() => clearTimeout(timer));
    return usedUs / chunks;
  } finally {
    await redis.stop();
  }
}

export interface FloorResults {
  options: FloorOptions;
  variants: FloorResult[];
}

export async function runRedisFloor(
  options: FloorOptions,
  log: (line: string) => void = () => undefined,
): Promise<FloorResults> {
  const rounds = new Map<FloorVariant, number[]>(FLOOR_VARIANTS.map((v) => [v, []]));
  for (let round_ = 1; round_ <= options.rounds; round_++) {
    for (const variant of FLOOR_VARIANTS) {
      const us = await measure(variant, options);
      rounds.get(variant)!.push(us);
      log(`redis floor r${round_} ${variant}: ${round(us, 2)} µs/chunk`);
    }
  }
  const variants = FLOOR_VARIANTS.map((variant) => {
    const values = rounds.get(variant)!;
    const s = summarize(values);
    return {
      variant,
      usPerChunk: values.map((v) => round(v, 2)),
      median: round(s.median, 2),
      min: round(s.min, 2),
      max: round(s.max, 2),
    };
  });
  return { options, variants };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      streams: { type: "string", default: "500" },
      rate: { type: "string", default: "20" },
      seconds: { type: "string", default: "8" },
      rounds: { type: "string", default: "3" },
    },
  });
  const options = {
    streams: Number(values.streams),
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
  };
  const results = await runRedisFloor(options, console.log);
  console.log(JSON.stringify(results));
  process.exit(0);
}
