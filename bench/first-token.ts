/**
 * Scenario "first-token" (docs/benchmarks.md, "Scenarios"): new chats at an even rate through nginx, each a new
 * conversation from one of P sessions (each its own source address, so nginx's ip_hash spreads them over the
 * gateways and no per-address limit is shared), every session's WebSocket open beforehand. Measured per chat, on
 * the client: POST sent → first `chunk` on the WebSocket, minus the provider's own time to its first token (the
 * demo model's: its first token is due at once; measured here in-process). Split by where the time goes: POST → 202,
 * POST → `start`, `start` → first chunk.
 */
import { createDemoProvider } from "../apps/ai/src/providers/demo";
import { clientAddresses, repeatScenario, type ScenarioRuns, withScenarioCluster } from "./cluster";
import { type EventLoopDelays, eventLoopDelays } from "./event-loop-delay";
import type { Percentiles } from "./failover";
import { cpuMs, machineBusyMs, treeCpuMs } from "./proc-stats";
import type { ChatOpened, FirstTokenChat } from "./protocol";
import { Histogram, nowMs, round } from "./stats";

export interface FirstTokenOptions {
  /** New chats per second, spread evenly. */
  rate: number;
  warmupSeconds: number;
  seconds: number;
  /** Sessions (sockets) the chats rotate over. */
  sockets: number;
  subnets: number;
  gateways: number;
  aiNodes: number;
  tokensPerSecond: number;
  tokens: number;
  clientProcesses: number;
  repeats: number;
  /** NODE_OPTIONS for the cluster's nodes (a diagnosis's --cpu-prof); none in the benchmark. */
  nodeOptions?: string;
  log: (line: string) => void;
}

/** The time added to the first token, p99 (ms). */
export const FIRST_TOKEN_TARGET_MS = 10;

export interface FirstTokenRun {
  repeat: number;
  chats: number;
  /** POST sent → first chunk received, minus the provider's own first-token time (ms). */
  addedMs: Percentiles;
  /** The parts, from POST sent: the 202, the `start` frame; and `start` → first chunk. */
  acceptedMs: Percentiles;
  startMs: Percentiles;
  startToChunkMs: Percentiles;
  /** The demo provider's time to its first token, measured in-process (median, ms). */
  providerMs: number;
  /** How late the clients sent chats against the schedule (p99, max ms). */
  sendLagMs: { p99: number; max: number };
  failed: number;
  violations: number;
  unexpectedCloses: number;
  /** During the schedule, % of one core: the machine busy, and what of it none of the scenario's processes used. */
  machineBusyPercent: number;
  othersPercent: number;
  /** CPU of the scenario's processes during the schedule, % of one core. */
  cpuPercent: { gateways: number; ai: number; redis: number; nginx: number; clients: number };
  /** Each node's event-loop delay over the measured window (its own /metrics): the queueing a chat met there. */
  eventLoopMs: EventLoopDelays;
  errors: string[];
  pass: boolean;
  failReasons: string[];
}

export type FirstTokenResults = ScenarioRuns<FirstTokenOptions, FirstTokenRun>;

export const FIRST_TOKEN_DEFAULTS: Omit<FirstTokenOptions, "log"> = {
  rate: 50,
  warmupSeconds: 10,
  seconds: 15,
  sockets: 250,
  subnets: 50,
  gateways: 2,
  aiNodes: 2,
  tokensPerSecond: 20,
  tokens: 60,
  clientProcesses: 2,
  repeats: 3,
};

const percentiles = (values: number[]): Percentiles => {
  const h = new Histogram();
  for (const v of values) h.add(v);
  return { p50: round(h.percentile(50), 2), p99: round(h.percentile(99), 2), max: round(h.max, 2) };
};

/** The demo provider's own time from its call to its first token, in this process (median of `n`, ms). */
export async function demoFirstTokenMs(tokensPerSecond: number, tokens: number, n = 200): Promise<number> {
  const provider = createDemoProvider({
    tokensPerSecond,
    maxTokens: tokens,
    maxAnswerTokens: 4096,
    seamlessTakeover: true,
  });
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const controller = new AbortController();
    const started = nowMs();
    const iterator = provider
      .stream({ messages: [{ role: "user", content: `first token ${i}` }], signal: controller.signal })
      [Symbol.asyncIterator]();
    await iterator.next();
    samples.push(nowMs() - started);
    controller.abort();
    await iterator.return?.();
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(n / 2)]!;
}

async function runOnce(options: FirstTokenOptions, repeat: number): Promise<{ run: FirstTokenRun; shape: string }> {
  return withScenarioCluster(
    "first-token",
    options.clientProcesses,
    {
      gateways: options.gateways,
      aiNodes: options.aiNodes,
      demoTokensPerSecond: options.tokensPerSecond,
      demoMaxTokens: options.tokens,
      maxSockets: options.sockets + 100,
      nodeOptions: options.nodeOptions,
      log: options.log,
    },
    async (cluster, clients) => {
      const entry = cluster.entry;
      const addresses = clientAddresses(options.sockets, Math.min(options.subnets, options.sockets));
      const procs = clients.length;
      const parts = clients.map((_, k) => addresses.filter((_, i) => i % procs === k));
      await Promise.all(
        clients.map((c, k) =>
          c.request<ChatOpened[]>("open", { entry, addresses: parts[k], reconnect: false }, 300_000),
        ),
      );
      const providerMs = await demoFirstTokenMs(options.tokensPerSecond, options.tokens);
      const total = Math.round((options.warmupSeconds + options.seconds) * options.rate);
      const measuredFrom = Math.round(options.warmupSeconds * options.rate);
      const intervalMs = 1000 / options.rate;
      const t0 = nowMs() + 500;
      const c = cluster;
      const cpu = () => ({
        gateways: c.pids.gateways.reduce((s, p) => s + cpuMs(p), 0),
        ai: c.pids.ai.reduce((s, p) => s + cpuMs(p), 0),
        redis: treeCpuMs(c.pids.redis),
        nginx: treeCpuMs(c.pids.nginx),
        clients: clients.reduce((s, child) => s + cpuMs(child.pid), 0),
      });
      const cpuBefore = cpu();
      const busyBefore = machineBusyMs();
      const answerMs = (options.tokens / Math.max(1, options.tokensPerSecond)) * 1000;
      // The first scrape resets every node's histogram as the measured window opens: half an interval before its
      // first chat, so the scrape's own work (a few ms on each node) falls between two chats, not on one.
      const opensAt = t0 + measuredFrom * intervalMs - intervalMs / 2;
      const windowOpens = new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, opensAt - nowMs()))).then(() =>
        eventLoopDelays(cluster),
      );
      windowOpens.catch(() => undefined); // awaited (and so thrown) after the schedule
      const replies = await Promise.all(
        clients.map((c, p) => {
          const chats = Array.from({ length: total }, (_, k) => ({ k, socket: k % options.sockets }))
            .filter(({ socket }) => socket % procs === p)
            .map(({ k, socket }) => ({ k, socket: Math.floor(socket / procs) }));
          return c.request<{ chats: FirstTokenChat[]; errors: string[]; unexpectedCloses: number }>(
            "firstToken",
            {
              t0,
              intervalMs,
              chats,
              measuredFrom,
              prompt: `first token ${repeat}`,
              tokens: options.tokens,
              doneTimeoutMs: answerMs + 30_000,
            },
            (options.warmupSeconds + options.seconds) * 1000 + answerMs + 60_000,
          );
        }),
      );
      const windowMs = nowMs() - t0;
      await windowOpens;
      const eventLoopMs = await eventLoopDelays(cluster);
      const busy = machineBusyMs() - busyBefore;
      const cpuAfter = cpu();
      const pct = (ms: number) => round((100 * ms) / Math.max(1, windowMs), 1);
      const keys = ["gateways", "ai", "redis", "nginx", "clients"] as const;
      const cpuPercent = Object.fromEntries(
        keys.map((k) => [k, pct(cpuAfter[k] - cpuBefore[k])]),
      ) as FirstTokenRun["cpuPercent"];
      const ours = keys.reduce((s, k) => s + cpuAfter[k] - cpuBefore[k], 0);
      const all = replies.flatMap((r) => r.chats).sort((a, b) => a.k - b.k);
      const measured = all.filter((c) => c.k >= measuredFrom);
      const ok = measured.filter((c) => c.status === 202 && c.firstChunkAt !== undefined);
      const failed = all.filter((c) => c.status !== 202 || c.firstChunkAt === undefined).length;
      const violations = all.reduce((s, c) => s + c.violations.length, 0);
      const unexpectedCloses = replies.reduce((s, r) => s + r.unexpectedCloses, 0);
      const lag = new Histogram();
      for (const c of all) lag.add(c.lagMs);
      const addedMs = percentiles(ok.map((c) => c.firstChunkAt! - c.sentAt - providerMs));
      const run: FirstTokenRun = {
        repeat,
        chats: measured.length,
        addedMs,
        acceptedMs: percentiles(ok.flatMap((c) => (c.acceptedAt !== undefined ? [c.acceptedAt - c.sentAt] : []))),
        startMs: percentiles(ok.flatMap((c) => (c.startAt !== undefined ? [c.startAt - c.sentAt] : []))),
        startToChunkMs: percentiles(ok.flatMap((c) => (c.startAt !== undefined ? [c.firstChunkAt! - c.startAt] : []))),
        providerMs: round(providerMs, 4),
        sendLagMs: { p99: round(lag.percentile(99)), max: round(lag.max) },
        failed,
        violations,
        unexpectedCloses,
        machineBusyPercent: pct(busy),
        othersPercent: pct(Math.max(0, busy - ours)),
        cpuPercent,
        eventLoopMs,
        errors: [
          ...new Set([
            ...all.flatMap((c) => c.violations.map((v) => `chat ${c.k}: ${v}`)),
            ...all.filter((c) => c.status !== 202).map((c) => `chat ${c.k}: status ${c.status}`),
            ...replies.flatMap((r) => r.errors),
          ]),
        ].slice(0, 10),
        pass: false,
        failReasons: [],
      };
      const reasons = run.failReasons;
      if (!(addedMs.p99 <= FIRST_TOKEN_TARGET_MS)) reasons.push(`p99 ${addedMs.p99} ms`);
      if (failed > 0) reasons.push(`${failed} chats failed or had no chunk`);
      if (violations > 0) reasons.push(`${violations} violations`);
      if (unexpectedCloses > 0) reasons.push(`${unexpectedCloses} sockets closed`);
      if (!(run.sendLagMs.p99 < 5)) reasons.push(`clients behind schedule (lag p99 ${run.sendLagMs.p99} ms)`);
      run.pass = reasons.length === 0;
      options.log(
        `first-token r${repeat}: ${measured.length} chats at ${options.rate}/s; added p50 ${addedMs.p50} p99 ${addedMs.p99} ` +
          `max ${addedMs.max} ms (202 p50 ${run.acceptedMs.p50}, start p50 ${run.startMs.p50}, start→chunk p50 ` +
          `${run.startToChunkMs.p50} ms); event-loop delay p99/max ${Object.entries(eventLoopMs)
            .map(([name, d]) => `${name} ${d.p99}/${d.max}`)
            .join(", ")} ms; ${run.pass ? "pass" : `FAIL (${reasons.join(", ")})`}`,
      );
      return { run, shape: cluster.nginxConfShape };
    },
  );
}

export function runFirstToken(options: FirstTokenOptions): Promise<FirstTokenResults> {
  return repeatScenario(options, FIRST_TOKEN_TARGET_MS, runOnce);
}
