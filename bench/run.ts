/**
 * `npm run bench [-- --streams 500 --rate 20 --seconds 20 --idle 2000 --targets bare,chatgrid]`
 *
 * Side by side on this machine, with the same publisher and the same clients:
 *  - bare:     Redis SUBSCRIBE → ws, no logic (bench/bare-relay.ts), clients connect to it directly;
 *  - chatgrid: one gateway behind the rendered nginx; the publisher appends chunks with the AI nodes' own script
 *              (StreamStore.append), so the path measured is Redis → gateway → nginx → client.
 * Reports delivered chunks/s, latency p50/p99 (publisher send → client receive), server CPU µs per chunk, and
 * memory per idle socket. Results are printed as a table and as JSON (for docs/benchmarks.md).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConversationStore, connectRedis, createRedis, SessionStore, StreamStore } from "@chatgrid/broker";
import { Redis } from "ioredis";
import type { WebSocket } from "ws";
import { ClusterRunner, freePort, httpUp, REPO_ROOT } from "../infra/runner";
import { newRecorder, nowMs, openClient, publishLoad } from "./load";
import { cpuMs, percentile, rssKiB, treeCpuMs } from "./proc-stats";

interface Options {
  streams: number;
  rate: number;
  seconds: number;
  idle: number;
}

interface Result {
  target: string;
  published: number;
  deliveredPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerChunk: number;
  nginxCpuUsPerChunk?: number;
  idleSocketKiB: number;
}

const WARMUP_SECONDS = 3;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the load against connected clients and measures one server process (plus nginx when given). */
async function measure(
  target: string,
  options: Options,
  publish: (stream: number) => void,
  recorder: ReturnType<typeof newRecorder>,
  serverPid: number,
  nginxPid?: number,
): Promise<Omit<Result, "idleSocketKiB">> {
  await publishLoad(options.streams, options.rate, WARMUP_SECONDS, publish);
  recorder.recording = true;
  const cpu0 = cpuMs(serverPid);
  const nginx0 = nginxPid ? treeCpuMs(nginxPid) : 0;
  const started = nowMs();
  const published = await publishLoad(options.streams, options.rate, options.seconds, publish);
  await pause(200); // let the last chunks arrive
  recorder.recording = false;
  const elapsed = (nowMs() - started) / 1000;
  const serverCpu = cpuMs(serverPid) - cpu0;
  const nginxCpu = nginxPid ? treeCpuMs(nginxPid) - nginx0 : undefined;
  const sorted = Float64Array.from(recorder.samples).sort();
  const delivered = recorder.delivered;
  return {
    target,
    published,
    deliveredPerSecond: Math.round(delivered / elapsed),
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    serverCpuUsPerChunk: round((serverCpu * 1000) / Math.max(1, delivered)),
    ...(nginxCpu !== undefined ? { nginxCpuUsPerChunk: round((nginxCpu * 1000) / Math.max(1, delivered)) } : {}),
  };
}

const round = (n: number) => Math.round(n * 100) / 100;

/** Opens `count` more idle sockets and returns the server's RSS growth per socket, in KiB. */
async function idleSocketCost(
  count: number,
  open: () => Promise<WebSocket>,
  pid: number,
): Promise<{ kib: number; sockets: WebSocket[] }> {
  await pause(1000);
  const before = rssKiB(pid);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 100)
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, open))));
  await pause(2000);
  return { kib: round((rssKiB(pid) - before) / count), sockets };
}

async function benchBare(options: Options): Promise<Result> {
  const redisPort = await freePort();
  const redisDir = mkdtempSync(join(tmpdir(), "chatgrid-bench-redis-"));
  const redisServer = spawn(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--dir", redisDir],
    { stdio: "ignore" },
  );
  const relayPort = await freePort();
  const relay = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "bench", "bare-relay.ts"), String(relayPort), `redis://127.0.0.1:${redisPort}`],
    {
      cwd: REPO_ROOT,
      stdio: "ignore",
    },
  );
  try {
    while (!(await httpUp(`http://127.0.0.1:${relayPort}/`))) await pause(50);
    const publisher = new Redis(`redis://127.0.0.1:${redisPort}`);
    const recorder = newRecorder();
    const clients = await Promise.all(
      Array.from({ length: options.streams }, (_, i) =>
        openClient(`ws://127.0.0.1:${relayPort}/?channel=s${i}`, undefined, recorder),
      ),
    );
    const seqs = new Array<number>(options.streams).fill(0);
    const result = await measure(
      "bare relay (Redis → ws)",
      options,
      (i) => {
        const seq = ++seqs[i]!;
        void publisher.publish(`s${i}`, `{"type":"chunk","streamId":"st_${i}","seq":${seq},"delta":"${nowMs()}"}`);
      },
      recorder,
      relay.pid!,
    );
    for (const c of clients) c.terminate();
    const idle = await idleSocketCost(
      options.idle,
      async () => openClient(`ws://127.0.0.1:${relayPort}/?channel=idle${Math.random()}`, undefined, newRecorder()),
      relay.pid!,
    );
    for (const s of idle.sockets) s.terminate();
    publisher.disconnect();
    return { ...result, idleSocketKiB: idle.kib };
  } finally {
    relay.kill("SIGKILL");
    redisServer.kill("SIGKILL");
    rmSync(redisDir, { recursive: true, force: true });
  }
}

async function benchChatgrid(options: Options): Promise<Result> {
  const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-bench-"));
  const runner = await ClusterRunner.start({
    stateDir,
    publicPortsMayBeFree: true,
    restart: false,
    topology: {
      gatewayNodes: 1,
      aiNodes: 1,
      // Every client comes from 127.0.0.1, and each idle socket makes a session with a hello without a token: the
      // per-address limits (nginx's sockets, the gateway's new sessions) are set out of the way.
      wsConnectionsPerAddress: options.streams + options.idle + 100,
      nodeEnv: {
        LOG_LEVEL: "warn",
        SESSION_RATE_LIMIT: "1000000",
        SESSION_CREATE_RATE_LIMIT: "1000000",
        SESSION_CREATE_RATE_BURST: "1000000",
        WS_FRAMES_PER_SECOND: "1000",
      },
    },
  });
  try {
    const redis = createRedis(runner.redisUrl, "bench", runner.redisOptions);
    await connectRedis(redis);
    // The publisher plays the AI node: a lease long enough that no gateway takes the streams over.
    const store = new StreamStore(redis, { leaseMs: 3_600_000, dispatchDeadlineMs: 3_600_000 });
    const sessions = new SessionStore(redis, 3_600_000);
    const conversations = new ConversationStore(redis, store);
    const streams: { sessionId: string; token: string; streamId: string; seq: number }[] = [];
    for (let i = 0; i < options.streams; i++) {
      const { sessionId, token } = await sessions.create();
      const turn = await conversations.beginTurn(sessionId, `bench ${i}`);
      await store.claim(turn.streamId, 1, "bench");
      streams.push({ sessionId, token, streamId: turn.streamId, seq: -1 });
    }
    const recorder = newRecorder();
    const wsUrl = `${runner.urls.chat.replace("http", "ws")}/ws/chat`;
    const clients: WebSocket[] = [];
    for (let i = 0; i < streams.length; i += 100) {
      const batch = streams.slice(i, i + 100);
      clients.push(
        ...(await Promise.all(batch.map((s) => openClient(wsUrl, { type: "hello", token: s.token }, recorder)))),
      );
    }
    for (const s of streams) {
      await store.append(s.streamId, 1, s.sessionId, 0, {
        kind: "start",
        conversationId: "c",
        messageId: "m",
        aiNode: "bench",
      });
      s.seq = 0;
    }
    const gatewayPid = runner.node("gateway-1").pid!;
    const result = await measure(
      "chatgrid (1 gateway via nginx)",
      options,
      (i) => {
        const s = streams[i]!;
        s.seq++;
        void store.append(s.streamId, 1, s.sessionId, s.seq, { kind: "chunk", delta: `${nowMs()}` });
      },
      recorder,
      gatewayPid,
      runner.node("nginx").pid,
    );
    for (const c of clients) c.terminate();
    const idle = await idleSocketCost(
      options.idle,
      () => openClient(wsUrl, { type: "hello" }, newRecorder()),
      gatewayPid,
    );
    for (const s of idle.sockets) s.terminate();
    redis.disconnect();
    return { ...result, idleSocketKiB: idle.kib };
  } finally {
    await runner.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      streams: { type: "string", default: "500" },
      rate: { type: "string", default: "20" },
      seconds: { type: "string", default: "20" },
      idle: { type: "string", default: "2000" },
      targets: { type: "string", default: "bare,chatgrid" },
    },
  });
  const options: Options = {
    streams: Number(values.streams),
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    idle: Number(values.idle),
  };
  console.log(
    `bench: ${options.streams} streams × ${options.rate} chunks/s for ${options.seconds} s (after ${WARMUP_SECONDS} s warm-up), ${options.idle} idle sockets`,
  );
  const results: Result[] = [];
  for (const target of (values.targets ?? "").split(",")) {
    if (target === "bare") results.push(await benchBare(options));
    else if (target === "chatgrid") results.push(await benchChatgrid(options));
    else throw new Error(`unknown target ${target} (bare, chatgrid)`);
    console.log(`  done: ${results.at(-1)?.target}`);
  }
  console.table(results);
  const [bare, chatgrid] = [
    results.find((r) => r.target.startsWith("bare")),
    results.find((r) => r.target.startsWith("chatgrid")),
  ];
  if (bare && chatgrid) {
    console.log(
      `chatgrid vs bare: throughput ×${round(chatgrid.deliveredPerSecond / bare.deliveredPerSecond)}, ` +
        `gateway CPU per chunk ×${round(chatgrid.serverCpuUsPerChunk / bare.serverCpuUsPerChunk)}, ` +
        `p99 ${chatgrid.p99Ms} ms, idle socket ${chatgrid.idleSocketKiB} KiB`,
    );
  }
  console.log(JSON.stringify({ options, results }));
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
