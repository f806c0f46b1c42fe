/**
 * The benchmark harness of docs/benchmarks.md: for each system under test a fresh stack (its own Redis, the relay,
 * the same rendered nginx), a publisher process and 1–2 client processes, a fixed list of loads with repeats, a
 * knee search, and memory per idle socket. Results are plain data (BenchResults), written as JSON and rendered by
 * bench/report.ts.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { ConversationStore, SessionStore, StreamStore } from "@chatgrid/broker";
import { connectionBudget } from "../infra/nginx/render";
import { binaryPath, REPO_ROOT } from "../infra/runner";
import { BenchChild } from "./ipc";
import { cpuMs, machineBusyMs, rssKiB, treeCpuMs, treeRssKiB } from "./proc-stats";
import type { ClientReport, PublisherReport, SeqRange, StreamSpec, SystemName } from "./protocol";
import { type Stack, startStack } from "./stack";
import { Histogram, nowMs, round, type Summary, sleep, sleepUntil, summarize } from "./stats";

/** A point passes when p99 stays under this and nothing is lost or duplicated (the knee's criterion). */
export const P99_LIMIT_MS = 50;
/** How long the coordinator waits after the last publish for the clients to receive what is still on its way. */
const DRAIN_MS = 5000;

export interface BenchOptions {
  systems: SystemName[];
  /** Streams (one per socket) of each fixed load point. */
  loads: number[];
  /** Chunks per second per stream. */
  rate: number;
  repeats: number;
  warmupSeconds: number;
  /** The measured window of each point. */
  seconds: number;
  /** Idle sockets for memory per socket (0: skip). */
  idleSockets: number;
  knee: boolean;
  /** Window of each knee probe (one run each). */
  kneeSeconds: number;
  /** At most this many probes per system. */
  kneeProbes: number;
  /** The knee search stops stepping up here (streams). */
  kneeMaxStreams: number;
  /** Client processes the sockets are split over. */
  clientProcesses: number;
  mode: "full" | "smoke" | "custom" | "profile";
  /** Extra Node flags for the relay process (the profile mode's --cpu-prof). */
  relayNodeArgs?: string[];
  log: (line: string) => void;
}

export type ProcessName = "relay" | "nginx" | "redis" | "publisher" | "clients";
export const PROCESS_NAMES: ProcessName[] = ["relay", "nginx", "redis", "publisher", "clients"];

export interface RedisCommandStat {
  calls: number;
  usecPerCall: number;
  /** Redis's own time for this command per delivered chunk (µs). */
  usecPerChunk: number;
}

export interface PointResult {
  system: SystemName;
  kind: "fixed" | "knee";
  streams: number;
  rate: number;
  repeat: number;
  seconds: number;
  /** The measured window on the shared clock (bench/stats.ts nowMs), ms. */
  window: { startMs: number; endMs: number };
  targetChunksPerSecond: number;
  expected: number;
  delivered: number;
  deliveredPerSecond: number;
  lost: number;
  duplicated: number;
  reordered: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** The longest time between two measured chunks of one stream, and that minus the publishing interval. */
  maxGapMs: number;
  stallMs: number;
  publisher: PublisherReport;
  /** CPU µs per delivered chunk (the publisher's: per published chunk), from /proc. */
  cpuUsPerChunk: Record<ProcessName, number>;
  /** CPU of each process during the window, in % of one core. */
  cpuPercent: Record<ProcessName, number>;
  /**
   * The machine during the window, in % of one core: every core busy, and what of it the benchmark's processes did
   * not use (other work on the machine); with the 1-minute load average at the window's end.
   */
  machine: { busyPercent: number; othersPercent: number; loadAverage: number };
  redis: {
    /** used_cpu_user + used_cpu_sys (INFO cpu, main process) per delivered chunk, µs. */
    infoCpuUsPerChunk: number;
    /** The same of forked children (AOF rewrites), µs per chunk. */
    infoChildrenCpuUsPerChunk: number;
    commands: Record<string, RedisCommandStat>;
    aofRewrites: number;
    usedMemoryMiB: number;
  };
  unexpectedCloses: number;
  errors: string[];
  pass: boolean;
  failReasons: string[];
}

export interface Aggregate {
  system: SystemName;
  streams: number;
  rate: number;
  repeats: number;
  pass: boolean;
  metrics: Record<string, Summary>;
}

export interface KneeResult {
  system: SystemName;
  /**
   * Which search of the system's knee (1 … repeats, systems interleaved), like the fixed loads' repeats; absent in
   * results written before the knee was repeated (one search per system).
   */
  repeat?: number;
  /** The highest load that passed (streams), 0 when none did. */
  streams: number;
  chunksPerSecond: number;
  /** True when the search stopped at kneeMaxStreams or its probe budget while still passing. */
  atLeast: boolean;
  /** The lowest load that failed, when one did. */
  failedAt?: number;
  probes: { streams: number; pass: boolean; p99Ms: number; lost: number; failReasons: string[] }[];
}

export interface MemoryResult {
  system: SystemName;
  /** Which run of the system's idle measurement (1 … repeats), each on a fresh stack. */
  repeat: number;
  sockets: number;
  opened: number;
  kibPerSocket: { relay: number; nginx: number; redis: number };
  rssBeforeKiB: { relay: number; nginx: number; redis: number };
}

export interface Environment {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  redis: string;
  nginx: string;
  socketIo: string;
  date: string;
  commit: string;
  dirty: boolean;
  loadAverageAtStart: number[];
}

export interface BenchResults {
  version: 1;
  mode: BenchOptions["mode"];
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  environment: Environment;
  options: Omit<BenchOptions, "log">;
  /** nginx.conf per system with ports and paths replaced, hashed: equal means the same proxy config. */
  nginxConfShapes: Partial<Record<SystemName, string>>;
  points: PointResult[];
  aggregates: Aggregate[];
  knees: KneeResult[];
  memory: MemoryResult[];
}

/** What every child process and stack of one run shares. */
interface RunContext {
  options: BenchOptions;
  maxSockets: number;
  shapes: Partial<Record<SystemName, string>>;
  points: PointResult[];
  memory: MemoryResult[];
}

const text = (command: string, args: string[]): string => {
  const run = spawnSync(command, args, { encoding: "utf8" });
  return `${run.stdout ?? ""}${run.stderr ?? ""}`.trim();
};

export function environment(): Environment {
  const cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown";
  const socketIo = (
    JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", "socket.io", "package.json"), "utf8")) as {
      version: string;
    }
  ).version;
  const adapter = (
    JSON.parse(
      readFileSync(join(REPO_ROOT, "node_modules", "@socket.io", "redis-adapter", "package.json"), "utf8"),
    ) as { version: string }
  ).version;
  const commit = text("git", ["-C", REPO_ROOT, "rev-parse", "--short=12", "HEAD"]);
  const dirty = text("git", ["-C", REPO_ROOT, "status", "--porcelain", "--untracked-files=no"]).length > 0;
  return {
    cpuModel,
    cores: cpus().length,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    redis: /v=(\S+)/.exec(text(binaryPath("redis-server"), ["--version"]))?.[1] ?? "unknown",
    nginx: /nginx\/(\S+)/.exec(text(binaryPath("nginx"), ["-v"]))?.[1] ?? "unknown",
    socketIo: `socket.io ${socketIo}, @socket.io/redis-adapter ${adapter}`,
    date: new Date().toISOString(),
    commit,
    dirty,
    loadAverageAtStart: loadavg().map((l) => round(l, 2)),
  };
}

/** The streams of one point; for chatgrid each is a real session, conversation turn and claimed stream. */
async function prepareStreams(stack: Stack, count: number): Promise<StreamSpec[]> {
  if (stack.system !== "chatgrid") {
    return Array.from({ length: count }, (_, index) => ({
      index,
      streamId: `st_${index}`,
      channel: stack.system === "bare" ? `bench:s${index}` : `s${index}`,
    }));
  }
  // The publisher plays the AI node that claimed each stream: a lease long enough that no gateway takes one over.
  const store = new StreamStore(stack.admin, { leaseMs: 3_600_000, dispatchDeadlineMs: 3_600_000 });
  const sessions = new SessionStore(stack.admin, 3_600_000);
  const conversations = new ConversationStore(stack.admin, store);
  const specs: StreamSpec[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, async (_, k) => {
        const index = i + k;
        const { sessionId, token } = await sessions.create();
        const turn = await conversations.beginTurn(sessionId, `bench ${index}`);
        const claim = await store.claim(turn.streamId, 1, "bench-publisher");
        if (claim.status !== "claimed") throw new Error(`claim of ${turn.streamId}: ${claim.status}`);
        return {
          index,
          streamId: turn.streamId,
          channel: `cg:ch:${sessionId}`,
          sessionId,
          token,
          conversationId: turn.conversationId,
          messageId: turn.assistantMessageId,
        };
      }),
    );
    specs.push(...batch);
  }
  return specs;
}

/** Parses INFO output: `key:value` lines, and commandstats' `calls=…,usec=…` values. */
export function parseInfo(info: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of info.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) map.set(line.slice(0, at), line.slice(at + 1));
  }
  return map;
}

function commandStats(info: Map<string, string>): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const [key, value] of info) {
    if (!key.startsWith("cmdstat_")) continue;
    const calls = Number(/calls=(\d+)/.exec(value)?.[1] ?? 0);
    const usec = Number(/usec=(\d+)/.exec(value)?.[1] ?? 0);
    out[key.slice("cmdstat_".length)] = { calls, usec };
  }
  return out;
}

interface Snapshot {
  cpu: Record<ProcessName, number>;
  machineBusy: number;
  info: Map<string, string>;
}

async function snapshot(stack: Stack, publisher: BenchChild, clients: BenchChild[], reset: boolean): Promise<Snapshot> {
  const cpu: Record<ProcessName, number> = {
    relay: cpuMs(stack.pids.relay),
    nginx: treeCpuMs(stack.pids.nginx),
    redis: treeCpuMs(stack.pids.redis),
    publisher: cpuMs(publisher.pid),
    clients: clients.reduce((sum, c) => sum + cpuMs(c.pid), 0),
  };
  const machineBusy = machineBusyMs();
  const info = parseInfo(await stack.admin.info("everything"));
  if (reset) await stack.admin.config("RESETSTAT");
  return { cpu, machineBusy, info };
}

const infoNumber = (info: Map<string, string>, key: string) => Number(info.get(key) ?? 0);

/** One load point on a fresh stack: `streams` sockets, `rate` chunks/s each, warm-up, then the measured window. */
async function runPoint(
  ctx: RunContext,
  system: SystemName,
  streams: number,
  kind: PointResult["kind"],
  repeat: number,
  seconds: number,
  /** Then measure memory per idle socket on the same stack and clients (the smoke mode), into ctx.memory. */
  idleAfter = 0,
): Promise<PointResult> {
  const { options } = ctx;
  const { rate, warmupSeconds } = options;
  const clients = Array.from({ length: Math.min(options.clientProcesses, streams) }, (_, k) =>
    BenchChild.start(`clients-${k + 1}`, "clients.ts"),
  );
  const publisher = BenchChild.start("publisher", "publisher.ts");
  let stack: Stack | undefined;
  try {
    stack = await startStack(system, {
      maxSockets: ctx.maxSockets,
      log: options.log,
      relayNodeArgs: options.relayNodeArgs,
    });
    ctx.shapes[system] = stack.nginxConfShape;
    const specs = await prepareStreams(stack, streams);
    const range: SeqRange = { warmupSeqs: Math.round(warmupSeconds * rate), measuredSeqs: Math.round(seconds * rate) };
    const parts = clients.map((_, k) => specs.filter((_, i) => i % clients.length === k));
    await Promise.all(
      clients.map((c, k) => c.request("load", { system, entry: stack!.entry, streams: parts[k], range, rate })),
    );
    await publisher.request("prime", {
      system,
      redisUrl: stack.redisUrl,
      redisPassword: stack.redisPassword,
      streams: specs,
    });
    const t0 = nowMs() + 200;
    const run = publisher.request<PublisherReport>(
      "run",
      { rate, range, t0 },
      (warmupSeconds + seconds) * 1000 + 120_000,
    );
    const windowStart = t0 + warmupSeconds * 1000;
    await sleepUntil(windowStart);
    const before = await snapshot(stack, publisher, clients, true);
    await sleepUntil(t0 + (warmupSeconds + seconds) * 1000);
    const after = await snapshot(stack, publisher, clients, false);
    const published = await run;
    const expected = streams * range.measuredSeqs;
    const drainUntil = nowMs() + DRAIN_MS;
    for (;;) {
      const got = (await Promise.all(clients.map((c) => c.request<number>("progress")))).reduce((a, b) => a + b, 0);
      if (got >= expected || nowMs() > drainUntil) break;
      await sleep(50);
    }
    const reports = await Promise.all(clients.map((c) => c.request<ClientReport>("report")));
    const result = pointResult({
      system,
      kind,
      streams,
      rate,
      repeat,
      seconds,
      expected,
      range,
      before,
      after,
      published,
      reports,
      window: { startMs: round(windowStart, 1), endMs: round(windowStart + seconds * 1000, 1) },
    });
    if (idleAfter > 0) ctx.memory.push(await measureIdle(ctx, stack, clients, idleAfter));
    return result;
  } finally {
    for (const c of clients) c.kill();
    publisher.kill();
    await stack?.stop();
  }
}

function pointResult(input: {
  system: SystemName;
  kind: PointResult["kind"];
  streams: number;
  rate: number;
  repeat: number;
  seconds: number;
  expected: number;
  range: SeqRange;
  before: Snapshot;
  after: Snapshot;
  published: PublisherReport;
  reports: ClientReport[];
  window: PointResult["window"];
}): PointResult {
  const { system, streams, rate, seconds, expected, before, after, published, reports } = input;
  const histogram = new Histogram();
  for (const r of reports) histogram.merge(r.histogram, r.maxLatencyMs);
  const delivered = reports.reduce((sum, r) => sum + r.distinct, 0);
  const duplicated = reports.reduce((sum, r) => sum + r.duplicated, 0);
  const reordered = reports.reduce((sum, r) => sum + r.reordered, 0);
  const unexpectedCloses = reports.reduce((sum, r) => sum + r.unexpectedCloses, 0);
  const maxGapMs = Math.max(0, ...reports.map((r) => r.maxGapMs));
  const perChunk = (ms: number, chunks: number) => round((ms * 1000) / Math.max(1, chunks), 2);
  const windowMs = seconds * 1000;
  const cpuUsPerChunk = {} as Record<ProcessName, number>;
  const cpuPercent = {} as Record<ProcessName, number>;
  for (const name of PROCESS_NAMES) {
    const used = after.cpu[name] - before.cpu[name];
    cpuUsPerChunk[name] = perChunk(used, name === "publisher" ? expected : delivered);
    cpuPercent[name] = round((100 * used) / windowMs, 1);
  }
  const ours = PROCESS_NAMES.reduce((sum, name) => sum + after.cpu[name] - before.cpu[name], 0);
  const busy = after.machineBusy - before.machineBusy;
  const machine = {
    busyPercent: round((100 * busy) / windowMs, 1),
    othersPercent: round(Math.max(0, (100 * (busy - ours)) / windowMs), 1),
    loadAverage: round(loadavg()[0]!, 2),
  };
  const cpuSeconds = (info: Map<string, string>, suffix: string) =>
    infoNumber(info, `used_cpu_user${suffix}`) + infoNumber(info, `used_cpu_sys${suffix}`);
  const commands: Record<string, RedisCommandStat> = {};
  for (const [name, stat] of Object.entries(commandStats(after.info))) {
    // The coordinator's own INFO and CONFIG are not the system's work.
    if (name === "info" || name.startsWith("config")) continue;
    commands[name] = {
      calls: stat.calls,
      usecPerCall: round(stat.usec / Math.max(1, stat.calls), 2),
      usecPerChunk: round(stat.usec / Math.max(1, delivered), 2),
    };
  }
  const latencyMs = {
    p50: round(histogram.percentile(50)),
    p90: round(histogram.percentile(90)),
    p99: round(histogram.percentile(99)),
    p999: round(histogram.percentile(99.9)),
    max: round(histogram.max),
  };
  const lost = expected - delivered;
  const failReasons: string[] = [];
  if (lost > 0) failReasons.push(`${lost} lost`);
  if (duplicated > 0) failReasons.push(`${duplicated} duplicated`);
  if (!(latencyMs.p99 < P99_LIMIT_MS)) failReasons.push(`p99 ${latencyMs.p99} ms`);
  if (!(published.lagP99Ms < P99_LIMIT_MS))
    failReasons.push(`publisher behind (lag p99 ${round(published.lagP99Ms)} ms)`);
  if (unexpectedCloses > 0) failReasons.push(`${unexpectedCloses} sockets closed`);
  const publishFailures = Object.values(published.failures).reduce((a, b) => a + b, 0);
  if (publishFailures > 0) failReasons.push(`${publishFailures} publishes failed`);
  return {
    system,
    kind: input.kind,
    streams,
    rate,
    repeat: input.repeat,
    seconds,
    window: input.window,
    targetChunksPerSecond: streams * rate,
    expected,
    delivered,
    deliveredPerSecond: Math.round(delivered / seconds),
    lost,
    duplicated,
    reordered,
    latencyMs,
    maxGapMs: round(maxGapMs),
    stallMs: round(Math.max(0, maxGapMs - 1000 / rate)),
    publisher: { ...published, lagP99Ms: round(published.lagP99Ms), lagMaxMs: round(published.lagMaxMs) },
    cpuUsPerChunk,
    cpuPercent,
    machine,
    redis: {
      infoCpuUsPerChunk: perChunk((cpuSeconds(after.info, "") - cpuSeconds(before.info, "")) * 1000, delivered),
      infoChildrenCpuUsPerChunk: perChunk(
        (cpuSeconds(after.info, "_children") - cpuSeconds(before.info, "_children")) * 1000,
        delivered,
      ),
      commands,
      aofRewrites: infoNumber(after.info, "aof_rewrites") - infoNumber(before.info, "aof_rewrites"),
      usedMemoryMiB: round(infoNumber(after.info, "used_memory") / 2 ** 20, 1),
    },
    unexpectedCloses,
    errors: [...new Set(reports.flatMap((r) => r.errors))].slice(0, 10),
    pass: failReasons.length === 0,
    failReasons,
  };
}

/** The Redis command a system's publisher runs per chunk (the append script for chatgrid). */
export const MAIN_COMMAND: Record<SystemName, string> = { bare: "publish", socketio: "publish", chatgrid: "evalsha" };

/** Medians and ranges of the repeats of each (system, load). */
export function aggregate(points: PointResult[]): Aggregate[] {
  const groups = new Map<string, PointResult[]>();
  for (const p of points.filter((p) => p.kind === "fixed")) {
    const key = `${p.system}:${p.streams}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()].map((runs) => {
    const first = runs[0]!;
    const metric = (f: (p: PointResult) => number) => summarize(runs.map(f));
    const main = MAIN_COMMAND[first.system];
    const pass =
      runs.every((p) => p.lost === 0 && p.duplicated === 0 && p.unexpectedCloses === 0) &&
      metric((p) => p.latencyMs.p99).median < P99_LIMIT_MS &&
      metric((p) => p.publisher.lagP99Ms).median < P99_LIMIT_MS &&
      runs.every((p) => Object.keys(p.publisher.failures).length === 0);
    return {
      system: first.system,
      streams: first.streams,
      rate: first.rate,
      repeats: runs.length,
      pass,
      metrics: {
        deliveredPerSecond: metric((p) => p.deliveredPerSecond),
        lost: metric((p) => p.lost),
        duplicated: metric((p) => p.duplicated),
        p50: metric((p) => p.latencyMs.p50),
        p99: metric((p) => p.latencyMs.p99),
        max: metric((p) => p.latencyMs.max),
        stall: metric((p) => p.stallMs),
        publisherLagP99: metric((p) => p.publisher.lagP99Ms),
        ...Object.fromEntries(PROCESS_NAMES.map((n) => [`cpu.${n}`, metric((p) => p.cpuUsPerChunk[n])])),
        ...Object.fromEntries(PROCESS_NAMES.map((n) => [`cpuPercent.${n}`, metric((p) => p.cpuPercent[n])])),
        redisInfoCpu: metric((p) => p.redis.infoCpuUsPerChunk + p.redis.infoChildrenCpuUsPerChunk),
        redisMainUsecPerCall: metric((p) => p.redis.commands[main]?.usecPerCall ?? Number.NaN),
        // The per-chunk command's own time (for the script: the commands it runs are inside it).
        redisMainUsecPerChunk: metric((p) => p.redis.commands[main]?.usecPerChunk ?? Number.NaN),
        aofRewrites: metric((p) => p.redis.aofRewrites),
        othersPercent: metric((p) => p.machine.othersPercent),
      },
    };
  });
}

/** How long memory settles before and after the idle sockets open (the smoke mode shortens it). */
const IDLE_SETTLE_MS = { full: 3000, smoke: 500 } as const;

/**
 * Idle sockets: RSS growth of the relay, nginx and Redis per socket, after a warm-up batch (the first sockets pay
 * for code paths and pools every later socket shares). The clients' earlier sockets, if any, are closed first.
 */
async function measureIdle(
  ctx: RunContext,
  stack: Stack,
  clients: BenchChild[],
  sockets: number,
): Promise<MemoryResult> {
  const settle = ctx.options.mode === "smoke" ? IDLE_SETTLE_MS.smoke : IDLE_SETTLE_MS.full;
  const { system, entry } = stack;
  await Promise.all(clients.map((c) => c.request("close")));
  await Promise.all(clients.map((c, k) => c.request("idle", { system, entry, count: 50, prefix: `warm${k}` })));
  await sleep(settle);
  const read = (s: Stack) => ({
    relay: rssKiB(s.pids.relay),
    nginx: treeRssKiB(s.pids.nginx),
    redis: rssKiB(s.pids.redis),
  });
  const before = read(stack);
  const counts = clients.map((_, k) => Math.floor(sockets / clients.length) + (k < sockets % clients.length ? 1 : 0));
  const opened = await Promise.all(
    clients.map((c, k) =>
      c.request<{ opened: number }>("idle", { system, entry, count: counts[k], prefix: `idle${k}` }, 300_000),
    ),
  );
  await sleep(settle);
  const after = read(stack);
  const per = (k: keyof typeof before) => round((after[k] - before[k]) / sockets, 2);
  return {
    system,
    repeat: 1,
    sockets,
    opened: opened.reduce((sum, o) => sum + o.opened, 0) - 50 * clients.length,
    kibPerSocket: { relay: per("relay"), nginx: per("nginx"), redis: per("redis") },
    rssBeforeKiB: before,
  };
}

/** Memory per idle socket on a fresh stack of its own. */
async function runIdle(ctx: RunContext, system: SystemName, sockets: number): Promise<MemoryResult> {
  const clients = Array.from({ length: ctx.options.clientProcesses }, (_, k) =>
    BenchChild.start(`idle-clients-${k + 1}`, "clients.ts"),
  );
  let stack: Stack | undefined;
  try {
    stack = await startStack(system, { maxSockets: ctx.maxSockets, log: ctx.options.log });
    ctx.shapes[system] = stack.nginxConfShape;
    return await measureIdle(ctx, stack, clients, sockets);
  } finally {
    for (const c of clients) c.kill();
    await stack?.stop();
  }
}

/**
 * One search of a system's knee: the highest load with p99 < 50 ms and nothing lost, by a step-up then bisection
 * from what the fixed loads showed (their aggregate over all repeats).
 */
async function kneeSearch(
  ctx: RunContext,
  system: SystemName,
  aggregates: Aggregate[],
  repeat: number,
): Promise<KneeResult> {
  const { options } = ctx;
  const fixed = aggregates.filter((a) => a.system === system).sort((a, b) => a.streams - b.streams);
  let lo = 0;
  let hi: number | undefined;
  for (const a of fixed) {
    if (a.pass && hi === undefined) lo = a.streams;
    else if (!a.pass && hi === undefined) hi = a.streams;
  }
  const probes: KneeResult["probes"] = [];
  const step = 50;
  for (let i = 0; i < options.kneeProbes; i++) {
    let next: number;
    if (hi === undefined) {
      if (lo >= options.kneeMaxStreams) break;
      next = Math.min(options.kneeMaxStreams, Math.round((Math.max(lo, 100) * 1.5) / step) * step);
    } else {
      const resolution = Math.max(100, Math.round(lo * 0.1));
      if (hi - lo <= resolution) break;
      next = Math.round((lo + hi) / 2 / step) * step;
      if (next <= lo || next >= hi) break;
    }
    const point = await runPoint(ctx, system, next, "knee", repeat, options.kneeSeconds);
    probes.push({
      streams: next,
      pass: point.pass,
      p99Ms: point.latencyMs.p99,
      lost: point.lost,
      failReasons: point.failReasons,
    });
    options.log(
      `  knee ${system} (r${repeat}) ${next} streams: ${point.pass ? "pass" : `fail (${point.failReasons.join(", ")})`}`,
    );
    ctx.points.push(point);
    if (point.pass) lo = next;
    else hi = next;
  }
  return {
    system,
    repeat,
    streams: lo,
    chunksPerSecond: lo * options.rate,
    atLeast: hi === undefined,
    ...(hi !== undefined ? { failedAt: hi } : {}),
    probes,
  };
}

/** The sockets nginx must admit at once, and a check that this machine's file limit carries them. */
function socketBudget(options: BenchOptions): number {
  const streams = Math.max(...options.loads, options.knee ? options.kneeMaxStreams : 0);
  const maxSockets = Math.max(streams, options.idleSockets + 50 * options.clientProcesses) + 200;
  if (process.getuid?.() !== 0) {
    const hard = Number(spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim());
    const needed = connectionBudget(maxSockets).rlimitNofile;
    if (Number.isInteger(hard) && hard < needed) {
      throw new Error(
        `nginx needs ${needed} open files for ${maxSockets} sockets and the hard limit is ${hard}: raise it (ulimit -Hn) or run as root, or lower --idle / --knee-max`,
      );
    }
  }
  return maxSockets;
}

/** Runs the whole plan: fixed loads × repeats (systems interleaved), knee searches, memory per idle socket. */
export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const env = environment();
  const ctx: RunContext = { options, maxSockets: socketBudget(options), shapes: {}, points: [], memory: [] };
  // The smoke mode measures idle sockets on the stack of its load point: a check of the harness, not a figure.
  const idleOnLoadStack = options.mode === "smoke" && options.repeats === 1 && options.loads.length === 1;
  const total = options.repeats * options.loads.length * options.systems.length;
  let done = 0;
  // Repeats outermost and systems innermost: a drift of the machine (other work) spreads over every system alike.
  for (let repeat = 1; repeat <= options.repeats; repeat++) {
    for (const streams of options.loads) {
      for (const system of options.systems) {
        const point = await runPoint(
          ctx,
          system,
          streams,
          "fixed",
          repeat,
          options.seconds,
          idleOnLoadStack ? options.idleSockets : 0,
        );
        ctx.points.push(point);
        done++;
        options.log(
          `[${done}/${total}] ${system} ${streams} streams (r${repeat}): ${point.deliveredPerSecond}/s delivered, ` +
            `p50 ${point.latencyMs.p50} p99 ${point.latencyMs.p99} max ${point.latencyMs.max} ms, lost ${point.lost}, ` +
            `dup ${point.duplicated}, relay ${point.cpuUsPerChunk.relay} µs/chunk, ${Math.round((Date.now() - started) / 1000)} s`,
        );
      }
    }
  }
  const aggregates = aggregate(ctx.points);
  const knees: KneeResult[] = [];
  if (options.knee) {
    // Repeated like every target's figure (the median of 3): one search is a handful of single 6 s probes, and one
    // search of the same Socket.IO moved by 25 % between runs (docs/benchmarks.md "Method"). Systems interleaved.
    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      for (const system of options.systems) knees.push(await kneeSearch(ctx, system, aggregates, repeat));
    }
  }
  const memory = ctx.memory;
  if (options.idleSockets > 0 && !idleOnLoadStack) {
    // Repeated like the fixed loads (systems interleaved): RSS growth includes garbage not yet collected, so one
    // reading depends on when the last major GC ran; the median of several does not.
    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      for (const system of options.systems) {
        const result = { ...(await runIdle(ctx, system, options.idleSockets)), repeat };
        memory.push(result);
        options.log(
          `memory ${system} (r${repeat}): ${result.kibPerSocket.relay} KiB per idle socket (nginx ${result.kibPerSocket.nginx}, Redis ${result.kibPerSocket.redis})`,
        );
      }
    }
  }
  const finished = Date.now();
  const { log: _log, ...rest } = options;
  return {
    version: 1,
    mode: options.mode,
    startedAt,
    finishedAt: new Date(finished).toISOString(),
    durationSeconds: Math.round((finished - started) / 1000),
    environment: env,
    options: rest,
    nginxConfShapes: ctx.shapes,
    points: ctx.points,
    aggregates,
    knees,
    memory,
  };
}

/** What a smoke run must show: every chunk of every system delivered once, and every part of the output filled. */
export function smokeProblems(results: BenchResults): string[] {
  const problems: string[] = [];
  for (const system of results.options.systems) {
    const points = results.points.filter((p) => p.system === system);
    if (points.length === 0) problems.push(`${system}: no point ran`);
    for (const p of points) {
      if (p.delivered !== p.expected) problems.push(`${system}: delivered ${p.delivered} of ${p.expected}`);
      if (p.lost !== 0 || p.duplicated !== 0) problems.push(`${system}: lost ${p.lost}, duplicated ${p.duplicated}`);
      if (p.unexpectedCloses !== 0) problems.push(`${system}: ${p.unexpectedCloses} sockets closed`);
      if (Object.keys(p.publisher.failures).length > 0)
        problems.push(`${system}: publish failures ${JSON.stringify(p.publisher.failures)}`);
      if (!Number.isFinite(p.latencyMs.p99) || p.latencyMs.p99 <= 0) problems.push(`${system}: p99 ${p.latencyMs.p99}`);
      const main = p.redis.commands[MAIN_COMMAND[system]];
      if (!main || main.calls === 0) problems.push(`${system}: Redis counted no ${MAIN_COMMAND[system]}`);
    }
    if (results.options.idleSockets > 0) {
      const memory = results.memory.find((m) => m.system === system);
      if (!memory) problems.push(`${system}: no memory result`);
      else if (memory.opened !== results.options.idleSockets)
        problems.push(`${system}: opened ${memory.opened} of ${results.options.idleSockets} idle sockets`);
    }
  }
  const shapes = new Set(Object.values(results.nginxConfShapes));
  if (shapes.size !== 1)
    problems.push(`nginx.conf differs between systems: ${JSON.stringify(results.nginxConfShapes)}`);
  return problems;
}
