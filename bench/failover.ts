/**
 * Scenario "failover" (docs/benchmarks.md, "Scenarios"): 2 gateways behind nginx, AI nodes with the demo model, S
 * sockets from S source addresses over many /24s (nginx's ip_hash spreads the subnets over the gateways; each
 * welcome says where a socket landed, so the set on the gateway to kill is known), each watching one live stream
 * of a long answer. The gateway is SIGKILLed; its clients reconnect through nginx as the web client does and resume.
 * Measured: time from the kill to each client's close, welcome and first event after its resume point; Redis
 * commands per resume (INFO commandstats over the resume, less the same commands' rate just before the kill);
 * every stream's seqs (nothing repeated or skipped, on any socket) and its final text against the stored answer and
 * the demo model's own text.
 */
import { StreamStore } from "@chatgrid/broker";
import { demoTokens } from "../apps/ai/src/providers/demo";
import {
  clientAddresses,
  commandCalls,
  repeatScenario,
  type ScenarioCluster,
  type ScenarioRuns,
  withScenarioCluster,
} from "./cluster";
import type { BenchChild } from "./ipc";
import { cpuMs, machineBusyMs, treeCpuMs } from "./proc-stats";
import type { ChatOpened, FailoverStreamReport } from "./protocol";
import { Histogram, nowMs, round, sleep } from "./stats";

export interface FailoverOptions {
  /** Sockets, each with one stream. */
  streams: number;
  /** /24 subnets the sockets' addresses are spread over (ip_hash keys on them). */
  subnets: number;
  gateways: number;
  aiNodes: number;
  tokensPerSecond: number;
  /** Tokens per answer: long enough to be live well after the resume. */
  tokens: number;
  clientProcesses: number;
  /** The window before the kill whose command rate is the baseline (ms). */
  baselineMs: number;
  repeats: number;
  log: (line: string) => void;
}

/** Every client of the killed gateway resumed within this (ms). */
export const FAILOVER_TARGET_MS = 3000;
/** The gateway the scenario kills. */
const VICTIM = "gateway-1";

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

export interface CommandDelta {
  /** Calls in the resume window. */
  window: number;
  /** Calls the window would have had at the rate just before the kill. */
  baseline: number;
  /** window − baseline, per resume. */
  perResume: number;
}

export interface FailoverRun {
  repeat: number;
  streams: number;
  /** Sockets on the killed gateway / on the other(s). */
  onVictim: number;
  onOthers: number;
  /** Clients of the killed gateway that reconnected and had an event after their resume point. */
  resumed: number;
  /** From the kill (ms): the client saw its socket close, got the new welcome, got the first event after afterSeq. */
  closeMs: Percentiles;
  welcomeMs: Percentiles;
  resumeMs: Percentiles;
  /** From the client's first reconnect attempt to its welcome (nginx + the surviving gateway's hello). */
  attemptToWelcomeMs: Percentiles;
  /** Connection attempts per resumed client (1: the first reconnect got through). */
  attemptsMax: number;
  /** The surviving gateways' CPU per resume (ms): over the resume window, less their streaming rate before it. */
  survivorCpuMsPerResume: number;
  /** Where the resumed clients landed. */
  landedOn: Record<string, number>;
  redis: {
    windowMs: number;
    /**
     * Per resume, the commands nothing else ran before the kill (baseline under 1 % of the window's calls): only
     * the resumes issue them, so the count is exact.
     */
    commandsPerResume: number;
    /** Per resume, the net of the commands the background runs too (the AI nodes' appends and renewals): ± noise. */
    sharedNetPerResume: number;
    commands: Record<string, CommandDelta>;
  };
  /** CPU during the resume window, % of one core. */
  cpuPercent: {
    clients: number;
    survivors: number;
    ai: number;
    redis: number;
    nginx: number;
    othersOnMachine: number;
  };
  /** Streams checked end to end, and what did not hold. */
  checked: number;
  violations: number;
  /** Resumes whose first event was not afterSeq + 1 (an event lost or repeated across the resume). */
  resumeGaps: number;
  notDone: number;
  textMismatches: number;
  /** Sockets of the other gateways that closed (they should not have). */
  othersClosed: number;
  errors: string[];
  pass: boolean;
  failReasons: string[];
}

export type FailoverResults = ScenarioRuns<FailoverOptions, FailoverRun>;

export const FAILOVER_DEFAULTS: Omit<FailoverOptions, "log"> = {
  streams: 500,
  subnets: 100,
  gateways: 2,
  aiNodes: 2,
  tokensPerSecond: 10,
  tokens: 200,
  clientProcesses: 2,
  baselineMs: 2000,
  repeats: 3,
};

const percentiles = (values: number[]): Percentiles => {
  const h = new Histogram();
  for (const v of values) h.add(v);
  return { p50: round(h.percentile(50)), p99: round(h.percentile(99)), max: round(h.max) };
};

function cpuSnapshot(cluster: ScenarioCluster, survivors: number[], clients: BenchChild[]) {
  return {
    clients: clients.reduce((s, c) => s + cpuMs(c.pid), 0),
    survivors: survivors.reduce((s, p) => s + cpuMs(p), 0),
    ai: cluster.pids.ai.reduce((s, p) => s + cpuMs(p), 0),
    redis: treeCpuMs(cluster.pids.redis),
    nginx: treeCpuMs(cluster.pids.nginx),
    machine: machineBusyMs(),
  };
}

async function runOnce(options: FailoverOptions, repeat: number): Promise<{ run: FailoverRun; shape: string }> {
  const { log } = options;
  return withScenarioCluster(
    "failover",
    options.clientProcesses,
    {
      gateways: options.gateways,
      aiNodes: options.aiNodes,
      demoTokensPerSecond: options.tokensPerSecond,
      demoMaxTokens: options.tokens,
      maxSockets: options.streams + 100,
      log: options.log,
    },
    async (cluster, clients) => {
      const entry = cluster.entry;
      const addresses = clientAddresses(options.streams, Math.min(options.subnets, options.streams));
      const parts = clients.map((_, k) => addresses.filter((_, i) => i % clients.length === k));
      const opened = (
        await Promise.all(
          clients.map((c, k) =>
            c.request<ChatOpened[]>("open", { entry, addresses: parts[k], reconnect: true }, 300_000),
          ),
        )
      ).flat();
      const victims = opened.filter((o) => o.node === VICTIM).map((o) => o.address);
      if (victims.length === 0) throw new Error(`no socket landed on ${VICTIM}: use more subnets`);
      const victimSet = new Set(victims);
      await Promise.all(
        clients.map((c) =>
          c.request("start", { prompt: `failover ${repeat}`, tokens: options.tokens, concurrency: 25 }, 300_000),
        ),
      );
      await Promise.all(clients.map((c) => c.request("live", { minSeq: 3, timeoutMs: 60_000 }, 70_000)));

      // The baseline: the same commands' rate while every stream runs and nothing has failed yet.
      const gatewayNames = cluster.runner.topology.gateways.map((g) => g.name);
      const survivors = cluster.pids.gateways.filter((_, i) => gatewayNames[i] !== VICTIM);
      const s1 = await commandCalls(cluster.admin);
      const t1 = nowMs();
      const cpuBaseline = cpuSnapshot(cluster, survivors, clients);
      await sleep(options.baselineMs);
      const s2 = await commandCalls(cluster.admin);
      const t2 = nowMs();
      const cpuBefore = cpuSnapshot(cluster, survivors, clients);

      const killAt = nowMs();
      await cluster.gateway(VICTIM).kill("SIGKILL");
      const resumedCounts = await Promise.all(
        clients.map((c, k) =>
          c.request<number>(
            "resumed",
            { addresses: parts[k]!.filter((a) => victimSet.has(a)), timeoutMs: 30_000 },
            40_000,
          ),
        ),
      );
      const s3 = await commandCalls(cluster.admin);
      const t3 = nowMs();
      const cpuAfter = cpuSnapshot(cluster, survivors, clients);
      const resumed = resumedCounts.reduce((a, b) => a + b, 0);

      const answerMs = (options.tokens / Math.max(1, options.tokensPerSecond)) * 1000;
      await Promise.all(clients.map((c) => c.request("done", { timeoutMs: answerMs + 30_000 }, answerMs + 40_000)));
      const reports = (
        await Promise.all(clients.map((c) => c.request<FailoverStreamReport[]>("failoverReport")))
      ).flat();

      // The stored answer (what history serves) and the demo model's own text for the prompt: both must equal what
      // each client assembled.
      const store = new StreamStore(cluster.admin);
      const stored = await Promise.all(reports.map(async (r) => (await store.text(r.streamId))?.content ?? null));
      let violations = 0;
      let notDone = 0;
      let textMismatches = 0;
      let resumeGaps = 0;
      let othersClosed = 0;
      const errors: string[] = [];
      reports.forEach((r, i) => {
        const expected = demoTokens([{ role: "user", content: r.prompt }], options.tokens).join("");
        violations += r.violations.length;
        if (r.violations.length > 0) errors.push(`${r.address} ${r.streamId}: ${r.violations.slice(0, 3).join("; ")}`);
        if (r.done?.finishReason !== "stop") notDone++;
        if (r.text !== stored[i] || r.text !== expected) {
          textMismatches++;
          errors.push(`${r.address}: text differs from the ${r.text !== stored[i] ? "stored answer" : "demo's text"}`);
        }
        if (victimSet.has(r.address)) {
          if (r.resumedAt !== undefined && r.firstSeqAfter !== (r.afterSeq ?? -1) + 1) resumeGaps++;
        } else if (r.closedAt !== undefined) othersClosed++;
        errors.push(...r.errors.map((e) => `${r.address}: ${e}`));
      });

      const victimReports = reports.filter((r) => victimSet.has(r.address));
      const since = (at: number | undefined) => (at === undefined ? [] : [at - killAt]);
      const landedOn: Record<string, number> = {};
      for (const r of victimReports) if (r.nodeAfter) landedOn[r.nodeAfter] = (landedOn[r.nodeAfter] ?? 0) + 1;
      const windowMs = t3 - t2;
      const commands: Record<string, CommandDelta> = {};
      let commandsPerResume = 0;
      let sharedNetPerResume = 0;
      for (const name of new Set([...Object.keys(s3), ...Object.keys(s2)])) {
        const window = (s3[name] ?? 0) - (s2[name] ?? 0);
        const baseline = (((s2[name] ?? 0) - (s1[name] ?? 0)) * windowMs) / (t2 - t1);
        if (window === 0 && baseline === 0) continue;
        const perResume = (window - baseline) / Math.max(1, resumed);
        commands[name] = { window, baseline: round(baseline, 1), perResume: round(perResume, 2) };
        if (baseline < 0.01 * window) commandsPerResume += perResume;
        else sharedNetPerResume += perResume;
      }
      const percent = (k: keyof ReturnType<typeof cpuSnapshot>) =>
        round((100 * (cpuAfter[k] - cpuBefore[k])) / Math.max(1, t3 - killAt), 1);
      // The killed gateway's last CPU is not read (it is gone): "other work" may hold its last milliseconds.
      const ours = (["clients", "survivors", "ai", "redis", "nginx"] as const).reduce(
        (s, k) => s + cpuAfter[k] - cpuBefore[k],
        0,
      );
      const resumeMs = percentiles(victimReports.flatMap((r) => since(r.resumedAt)));
      // The surviving gateways' CPU for the resumes: over the window, less their rate before the kill (streaming).
      const survivorRate = (cpuBefore.survivors - cpuBaseline.survivors) / Math.max(1, killAt - t1);
      const survivorCpuMsPerResume =
        (cpuAfter.survivors - cpuBefore.survivors - survivorRate * (t3 - killAt)) / Math.max(1, resumed);
      const run: FailoverRun = {
        repeat,
        streams: options.streams,
        onVictim: victims.length,
        onOthers: opened.length - victims.length,
        resumed,
        closeMs: percentiles(victimReports.flatMap((r) => since(r.closedAt))),
        welcomeMs: percentiles(victimReports.flatMap((r) => since(r.welcomeAt))),
        resumeMs,
        attemptToWelcomeMs: percentiles(
          victimReports.flatMap((r) =>
            r.welcomeAt !== undefined && r.attemptsAt.length > 0 ? [r.welcomeAt - r.attemptsAt.at(-1)!] : [],
          ),
        ),
        attemptsMax: Math.max(0, ...victimReports.map((r) => r.attemptsAt.length)),
        survivorCpuMsPerResume: round(survivorCpuMsPerResume, 2),
        landedOn,
        redis: {
          windowMs: round(windowMs, 1),
          commandsPerResume: round(commandsPerResume, 2),
          sharedNetPerResume: round(sharedNetPerResume, 2),
          commands,
        },
        cpuPercent: {
          clients: percent("clients"),
          survivors: percent("survivors"),
          ai: percent("ai"),
          redis: percent("redis"),
          nginx: percent("nginx"),
          othersOnMachine: round(
            Math.max(0, (100 * (cpuAfter.machine - cpuBefore.machine - ours)) / Math.max(1, t3 - killAt)),
            1,
          ),
        },
        checked: reports.length,
        violations,
        resumeGaps,
        notDone,
        textMismatches,
        othersClosed,
        errors: [...new Set(errors)].slice(0, 10),
        pass: false,
        failReasons: [],
      };
      const reasons = run.failReasons;
      if (resumed < victims.length) reasons.push(`${victims.length - resumed} of ${victims.length} did not resume`);
      if (!(resumeMs.max <= FAILOVER_TARGET_MS)) reasons.push(`slowest resume ${resumeMs.max} ms`);
      if (violations > 0) reasons.push(`${violations} seq violations`);
      if (resumeGaps > 0) reasons.push(`${resumeGaps} resumes not at afterSeq + 1`);
      if (notDone > 0) reasons.push(`${notDone} streams without done stop`);
      if (textMismatches > 0) reasons.push(`${textMismatches} texts differ`);
      if (othersClosed > 0) reasons.push(`${othersClosed} sockets of other gateways closed`);
      run.pass = reasons.length === 0;
      log(
        `failover r${repeat}: ${victims.length} of ${options.streams} sockets on ${VICTIM}; resumed ${resumed}; ` +
          `resume p50 ${resumeMs.p50} p99 ${resumeMs.p99} max ${resumeMs.max} ms (welcome p99 ${run.welcomeMs.p99}); ` +
          `${run.redis.commandsPerResume} Redis commands per resume; ${run.pass ? "pass" : `FAIL (${reasons.join(", ")})`}`,
      );
      return { run, shape: cluster.nginxConfShape };
    },
  );
}

export function runFailover(options: FailoverOptions): Promise<FailoverResults> {
  return repeatScenario(options, FAILOVER_TARGET_MS, runOnce);
}
