/**
 * Renders BenchResults as docs-ready Markdown tables and SVG figures, and writes them into docs/benchmarks.md
 * (between the markers) and docs/benchmarks/*.svg (docs/benchmarks.md, "How to run").
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../infra/runner";
import { worstDelay } from "./event-loop-delay";
import {
  type Aggregate,
  type BenchResults,
  MAIN_COMMAND,
  type MemoryResult,
  P99_LIMIT_MS,
  type PointResult,
} from "./harness";
import { SYSTEM_LABELS, type SystemName } from "./protocol";
import type { FloorVariant } from "./redis-floor";
import type { RunResults } from "./scenarios";
import { type Summary, summarize } from "./stats";
import { type BarGroup, type LineSeries, lineChart, stackedBarChart } from "./svg";

export const MARKER_START = "<!-- bench:results:start -->";
export const MARKER_END = "<!-- bench:results:end -->";
export const RESULTS_DIR = join(REPO_ROOT, "bench", "results");
export const DOCS_FILE = join(REPO_ROOT, "docs", "benchmarks.md");
export const DOCS_FIGURES = join(REPO_ROOT, "docs", "benchmarks");

export const FIGURES = ["p99-vs-load.svg", "cpu-per-chunk.svg", "memory-per-socket.svg"] as const;

const COLORS: Record<SystemName, string> = { bare: "#777777", socketio: "#1f77b4", chatgrid: "#d62728" };
const SHORT: Record<SystemName, string> = { bare: "bare", socketio: "socket.io", chatgrid: "chatgrid" };
const PROCESS_COLORS = { relay: "#4e79a7", nginx: "#59a14f", redis: "#e15759", publisher: "#bab0ac" } as const;

/** A number for a table: 3 significant digits at most, thousands grouped. */
export function num(value: number): string {
  if (!Number.isFinite(value)) return "—";
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US");
  return String(Number(value.toPrecision(3)));
}

/** `median [min–max]`, or just the median when the repeats agree (or there was one). */
export function range(summary: Summary | undefined): string {
  if (!summary || !Number.isFinite(summary.median)) return "—";
  const [m, lo, hi] = [num(summary.median), num(summary.min), num(summary.max)];
  return lo === hi ? m : `${m} [${lo}–${hi}]`;
}

const ordered = (results: BenchResults): SystemName[] => results.options.systems;

function aggregateOf(results: BenchResults, system: SystemName, streams: number): Aggregate | undefined {
  return results.aggregates.find((a) => a.system === system && a.streams === streams);
}

function environmentLine(results: BenchResults): string {
  const e = results.environment;
  const minutes = Math.round(results.durationSeconds / 6) / 10;
  return (
    `Measured ${e.date.slice(0, 10)} on ${e.cpuModel}, ${e.cores} cores, ${e.memoryGiB} GiB, Linux ${e.kernel}; ` +
    `Node ${e.node}, Redis ${e.redis}, nginx ${e.nginx}, ${e.socketIo}; commit ${e.commit}${e.dirty ? " with local changes" : ""}. ` +
    `Run: ${results.mode}, ${minutes} min, load average at its start ${e.loadAverageAtStart.join(" / ")}.`
  );
}

function loadsTable(results: BenchResults): string[] {
  const o = results.options;
  const lines = [
    `Fixed loads at ${o.rate} chunks/s per stream, one stream per socket, ${o.warmupSeconds} s warm-up then ${o.seconds} s measured; medians of ${o.repeats} repeat${o.repeats === 1 ? "" : "s"} [range]. CPU in µs per delivered chunk (publisher: per published chunk); Redis µs (commandstats) is Redis's own time (INFO commandstats) per chunk in the command that carries it (chatgrid's append script carries several chunks per call); other work is the machine's CPU (% of one core) that none of the benchmark's processes used during the window.`,
    "",
    "| load | system | delivered/s | lost / dup | p50 ms | p99 ms | max ms | stall ms | relay µs | nginx µs | Redis µs (/proc) | Redis µs (commandstats) | publisher µs | other work % | passes |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const streams of o.loads) {
    for (const system of ordered(results)) {
      const a = aggregateOf(results, system, streams);
      if (!a) continue;
      const m = a.metrics;
      lines.push(
        `| ${num(streams)} × ${o.rate}/s | ${SYSTEM_LABELS[system]} | ${range(m.deliveredPerSecond)} | ${num(m.lost!.max)} / ${num(m.duplicated!.max)} | ${range(m.p50)} | ${range(m.p99)} | ${range(m.max)} | ${range(m.stall)} | ${range(m["cpu.relay"])} | ${range(m["cpu.nginx"])} | ${range(m["cpu.redis"])} | ${range(m.redisMainUsecPerChunk)} (${MAIN_COMMAND[system]}) | ${range(m["cpu.publisher"])} | ${range(m.othersPercent)} | ${a.pass ? "yes" : "**no**"} |`,
      );
    }
  }
  return lines;
}

/** Each system's knee searches: the median and range of their knees (chunks/s), in the order the systems ran. */
export function kneeBySystem(results: BenchResults) {
  const systems = [...new Set(results.knees.map((k) => k.system))];
  return systems.map((system) => {
    const runs = results.knees.filter((k) => k.system === system);
    return {
      system,
      runs,
      chunksPerSecond: summarize(runs.map((k) => k.chunksPerSecond)),
      /** Some search stopped while still passing: its knee is a lower bound. */
      atLeast: runs.some((k) => k.atLeast),
    };
  });
}

/**
 * The knee target: chatgrid's median knee against Socket.IO's, and the range of the ratios of the searches that
 * ran side by side (repeat r of each), so one lucky or unlucky search does not decide it.
 */
export function kneeRatio(results: BenchResults): { median: number; min: number; max: number } | undefined {
  const knees = kneeBySystem(results);
  const cg = knees.find((k) => k.system === "chatgrid");
  const sio = knees.find((k) => k.system === "socketio");
  if (!cg || !sio) return undefined;
  const paired = cg.runs.flatMap((k) => {
    const peer = sio.runs.find((p) => (p.repeat ?? 1) === (k.repeat ?? 1));
    return peer ? [ratio(k.chunksPerSecond, peer.chunksPerSecond)] : [];
  });
  const spread = summarize(paired);
  return { median: ratio(cg.chunksPerSecond.median, sio.chunksPerSecond.median), min: spread.min, max: spread.max };
}

export function kneeTable(results: BenchResults): string[] {
  if (results.knees.length === 0) return [];
  const knees = kneeBySystem(results);
  const searches = Math.max(...knees.map((k) => k.runs.length));
  const lines = [
    `Knee: the highest load with p99 < ${P99_LIMIT_MS} ms, nothing lost or duplicated and the publisher on schedule; from the fixed loads (all repeats), then a step-up or bisection with one ${results.options.kneeSeconds} s run per probe (at most ${results.options.kneeProbes})${searches > 1 ? `; ${searches} searches per system, systems interleaved, median [range]` : ""}.`,
    "",
    "| system | knee, chunks/s | search | knee | probes (streams: p99 ms, or why it failed) |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const { system, runs, chunksPerSecond, atLeast } of knees) {
    for (const [i, k] of runs.entries()) {
      const probes = k.probes.map(
        (p) => `${num(p.streams)}: ${p.pass ? `${num(p.p99Ms)} ms` : p.failReasons.join(", ")}`,
      );
      const bound = k.atLeast ? "≥ " : "";
      const failed = k.failedAt !== undefined ? ` (fails at ${num(k.failedAt)})` : "";
      const summary = i === 0 ? `${atLeast ? "≥ " : ""}${range(chunksPerSecond)}` : "";
      lines.push(
        `| ${i === 0 ? SYSTEM_LABELS[system] : ""} | ${summary} | ${k.repeat ?? 1} | ${bound}${num(k.streams)} streams${failed} | ${probes.join("; ") || "—"} |`,
      );
    }
  }
  return lines;
}

/** Each system's idle-socket runs: medians and ranges of KiB per socket, in the order the systems ran. */
export function memoryBySystem(results: BenchResults) {
  const systems = [...new Set(results.memory.map((m) => m.system))];
  return systems.map((system) => {
    const runs = results.memory.filter((m) => m.system === system);
    const of = (f: (m: MemoryResult) => number) => summarize(runs.map(f));
    return {
      system,
      runs: runs.length,
      relay: of((m) => m.kibPerSocket.relay),
      nginx: of((m) => m.kibPerSocket.nginx),
      redis: of((m) => m.kibPerSocket.redis),
      opened: Math.min(...runs.map((m) => m.opened)),
    };
  });
}

function memoryTable(results: BenchResults): string[] {
  if (results.memory.length === 0) return [];
  const rows = memoryBySystem(results);
  const runs = Math.max(...rows.map((r) => r.runs));
  const lines = [
    `Memory per idle socket: RSS growth over ${num(results.options.idleSockets)} idle sockets (after 50 warm-up sockets per client process), each its own channel, room or session (chatgrid: a \`hello\` without a token, so a new session and a channel subscription)${runs > 1 ? `; medians of ${runs} runs [range], each on a fresh stack` : ""}.`,
    "",
    "| system | relay KiB/socket | nginx KiB/socket | Redis KiB/socket | sockets opened |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const m of rows) {
    lines.push(
      `| ${SYSTEM_LABELS[m.system]} | ${range(m.relay)} | ${range(m.nginx)} | ${range(m.redis)} | ${num(m.opened)} |`,
    );
  }
  return lines;
}

/** Redis's own accounting of one chatgrid point: every command the append script runs, per chunk. */
function redisCommandsTable(results: BenchResults): string[] {
  const streams = results.options.loads[0];
  const points = results.points.filter((p) => p.system === "chatgrid" && p.kind === "fixed" && p.streams === streams);
  const point = points[Math.floor(points.length / 2)];
  if (!point) return [];
  const rows = Object.entries(point.redis.commands)
    .filter(([, c]) => c.calls > 0)
    .sort((a, b) => b[1].usecPerChunk - a[1].usecPerChunk);
  const lines = [
    `Redis INFO commandstats for chatgrid at ${num(point.streams)} streams (repeat ${point.repeat}): evalsha is the append script, and its time includes the commands it runs (listed below it). AOF rewrites in the window: ${point.redis.aofRewrites}; Redis used ${num(point.redis.usedMemoryMiB)} MiB at its end.`,
    "",
    "| command | calls per chunk | µs per call | µs per chunk |",
    "| --- | --- | --- | --- |",
  ];
  for (const [name, c] of rows) {
    lines.push(
      `| ${name} | ${num(c.calls / Math.max(1, point.delivered))} | ${num(c.usecPerCall)} | ${num(c.usecPerChunk)} |`,
    );
  }
  return lines;
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : Number.NaN;

type Knee = ReturnType<typeof kneeBySystem>[number];

/**
 * The bare relay's knee, and chatgrid's and Socket.IO's as multiples of it. A knee that still passed at the search's
 * top is "≥": a ratio to it is an upper bound ("≤"), a ratio of it a lower one ("≥").
 */
export function kneeAgainstBare(bare: Knee, chatgrid: Knee, socketio: Knee): string {
  const times = (knee: Knee) => {
    const value = ratio(knee.chunksPerSecond.median, bare.chunksPerSecond.median);
    if (!Number.isFinite(value)) return "—";
    const bound = bare.atLeast && !knee.atLeast ? "≤ " : knee.atLeast && !bare.atLeast ? "≥ " : "";
    return `${bound}${num(value)} ×`;
  };
  return `${bare.atLeast ? "≥ " : ""}${num(bare.chunksPerSecond.median)} chunks/s (chatgrid ${times(chatgrid)}, Socket.IO ${times(socketio)})`;
}

/**
 * chatgrid's figures against the targets of issue 12 (docs/benchmarks.md "Targets"), with the bare relay's figure
 * of the same run beside each: most targets are absolute (ms, µs), and the same tree moves by a factor of two
 * between hosts, so the floor measured next to chatgrid is what tells the code from the machine.
 */
function targetsTable(results: BenchResults): string[] {
  const has = (s: SystemName) => results.options.systems.includes(s);
  if (!has("chatgrid")) return [];
  const lowest = results.options.loads[0]!;
  const cg = aggregateOf(results, "chatgrid", lowest);
  const bare = has("bare") ? aggregateOf(results, "bare", lowest) : undefined;
  const at1000 = aggregateOf(results, "chatgrid", 1000);
  const bareAt1000 = has("bare") ? aggregateOf(results, "bare", 1000) : undefined;
  const knees = kneeBySystem(results);
  const kneeOf = (s: SystemName) => knees.find((k) => k.system === s);
  const memories = memoryBySystem(results);
  const memory = memories.find((m) => m.system === "chatgrid");
  const bareMemory = memories.find((m) => m.system === "bare");
  /** The bare relay's figure, and chatgrid's as a multiple of it. */
  const floor = (chatgrid: Summary | undefined, relay: Summary | undefined, unit: string) => {
    const times = ratio(chatgrid?.median, relay?.median);
    return Number.isFinite(times) ? `${num(relay!.median)} ${unit} (chatgrid ${num(times)} ×)` : "";
  };
  const rows: [string, string, string][] = [];
  const kneeCg = kneeOf("chatgrid");
  const kneeSio = kneeOf("socketio");
  const kneeBare = kneeOf("bare");
  const kneeTimes = kneeRatio(results);
  if (kneeCg && kneeSio && kneeTimes) {
    const spread =
      kneeCg.runs.length > 1 ? `, searches side by side ${num(kneeTimes.min)}–${num(kneeTimes.max)} ×` : "";
    rows.push([
      "knee ≥ 1.5 × Socket.IO's",
      `${num(kneeTimes.median)} × (${kneeCg.atLeast ? "≥ " : ""}${num(kneeCg.chunksPerSecond.median)} against ${kneeSio.atLeast ? "≥ " : ""}${num(kneeSio.chunksPerSecond.median)} chunks/s, medians${spread})`,
      kneeBare ? kneeAgainstBare(kneeBare, kneeCg, kneeSio) : "",
    ]);
  }
  if (at1000)
    rows.push([
      "p99 < 10 ms at 1,000 streams",
      `${range(at1000.metrics.p99)} ms`,
      floor(at1000.metrics.p99, bareAt1000?.metrics.p99, "ms"),
    ]);
  if (cg) {
    rows.push([
      "Redis CPU ≤ 8 µs per chunk (Redis's own accounting)",
      `${range(cg.metrics.redisInfoCpu)} µs (INFO cpu), append script ${range(cg.metrics.redisMainUsecPerChunk)} µs (commandstats), at ${num(lowest)} streams`,
      floor(cg.metrics.redisInfoCpu, bare?.metrics.redisInfoCpu, "µs, its PUBLISH"),
    ]);
    if (bare) {
      rows.push([
        "gateway CPU per chunk ≤ 1.3 × the bare relay's",
        `${num(ratio(cg.metrics["cpu.relay"]?.median, bare.metrics["cpu.relay"]?.median))} × (${num(cg.metrics["cpu.relay"]!.median)} µs) at ${num(lowest)} streams`,
        `${num(bare.metrics["cpu.relay"]!.median)} µs`,
      ]);
    }
    rows.push([
      `p99 ≤ 3 ms at ${num(lowest)} streams`,
      `${range(cg.metrics.p99)} ms`,
      floor(cg.metrics.p99, bare?.metrics.p99, "ms"),
    ]);
    rows.push([
      `no stall above 20 ms (${results.options.seconds} s window)`,
      `${range(cg.metrics.stall)} ms at ${num(lowest)} streams`,
      floor(cg.metrics.stall, bare?.metrics.stall, "ms"),
    ]);
    rows.push([
      "AI node CPU per token ≤ 1.5 × the gateway's per chunk",
      `publisher ${num(ratio(cg.metrics["cpu.publisher"]?.median, cg.metrics["cpu.relay"]?.median))} × (${num(cg.metrics["cpu.publisher"]!.median)} µs per token; the publisher runs the AI node's append, not its provider)`,
      "",
    ]);
  }
  if (memory)
    rows.push([
      "idle socket ≤ 12 KB of gateway memory",
      `${range(memory.relay)} KiB`,
      floor(memory.relay, bareMemory?.relay, "KiB"),
    ]);
  return [
    "| target | this run | the bare relay, same run |",
    "| --- | --- | --- |",
    ...rows.map(([t, v, f]) => `| ${t} | ${v} | ${f} |`),
  ];
}

/** The generated section of docs/benchmarks.md (without the markers). `figures` is the SVGs' dir, relative. */
export function renderMarkdown(results: RunResults, figures: string): string {
  const compared = results.points.length > 0;
  const sections = [
    environmentLine(results),
    "",
    ...(compared
      ? [
          `![p99 against load](${figures}/p99-vs-load.svg)`,
          "",
          ...loadsTable(results),
          "",
          `![CPU per chunk per process](${figures}/cpu-per-chunk.svg)`,
          "",
          ...kneeTable(results),
          "",
          ...memoryTable(results),
          "",
          `![Memory per idle socket](${figures}/memory-per-socket.svg)`,
          "",
          ...redisCommandsTable(results),
          "",
          ...targetsTable(results),
        ]
      : []),
    "",
    ...scenarioTables(results),
  ];
  return `${sections
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()}\n`;
}

/** `median [min–max]` over the scenario's runs. */
const over = <T>(runs: T[], f: (run: T) => number) => range(summarize(runs.map(f)));
const yes = (pass: boolean) => (pass ? "yes" : "**no**");

/** The scenarios' tables: one row per run, a row of medians [range], and each target against it. */
export function scenarioTables(results: RunResults): string[] {
  const lines: string[] = [];
  const failover = results.scenarios?.failover;
  if (failover && failover.runs.length > 0) {
    const o = failover.options;
    const runs = failover.runs;
    lines.push(
      `Failover: ${num(o.streams)} sockets from ${num(o.streams)} addresses over ${o.subnets} /24s through nginx (ip_hash), ${o.gateways} gateways, ${o.aiNodes} AI nodes, each socket watching one answer of ${o.tokens} demo tokens at ${o.tokensPerSecond}/s; gateway-1 SIGKILLed once every stream is past seq 3; its clients reconnect through nginx with the web client's policy and resume. Times in ms from the kill: the client saw its socket close, had its new welcome, and the first event after its resume point. Redis commands per resume: INFO commandstats over the resume (from the kill to the last client's first resumed event) for the commands nothing ran in the ${o.baselineMs / 1000} s before the kill, so only the resumes issue them. Other work: the machine's CPU (% of one core) that none of the scenario's processes used, from the kill to the last resume.`,
      "",
      "| run | on killed / other gateway | resumed | close p99 | welcome p50 / p99 | resume p50 | resume p99 | resume max | attempts (max) | gateway CPU ms per resume | Redis commands per resume | seq violations / resume gaps | texts differ | other work % | passes |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const r of runs) {
      lines.push(
        `| ${r.repeat} | ${r.onVictim} / ${r.onOthers} | ${r.resumed} | ${num(r.closeMs.p99)} | ${num(r.welcomeMs.p50)} / ${num(r.welcomeMs.p99)} | ${num(r.resumeMs.p50)} | ${num(r.resumeMs.p99)} | ${num(r.resumeMs.max)} | ${r.attemptsMax} | ${num(r.survivorCpuMsPerResume)} | ${num(r.redis.commandsPerResume)} | ${r.violations} / ${r.resumeGaps} | ${r.textMismatches} | ${num(r.cpuPercent.othersOnMachine)} | ${yes(r.pass)} |`,
      );
    }
    if (runs.length > 1)
      lines.push(
        `| median [range] | ${over(runs, (r) => r.onVictim)} / ${over(runs, (r) => r.onOthers)} | ${over(runs, (r) => r.resumed)} | ${over(runs, (r) => r.closeMs.p99)} | ${over(runs, (r) => r.welcomeMs.p50)} / ${over(runs, (r) => r.welcomeMs.p99)} | ${over(runs, (r) => r.resumeMs.p50)} | ${over(runs, (r) => r.resumeMs.p99)} | ${over(runs, (r) => r.resumeMs.max)} | ${over(runs, (r) => r.attemptsMax)} | ${over(runs, (r) => r.survivorCpuMsPerResume)} | ${over(runs, (r) => r.redis.commandsPerResume)} | | | ${over(runs, (r) => r.cpuPercent.othersOnMachine)} | |`,
      );
    const middle = [...runs].sort((a, b) => a.resumeMs.max - b.resumeMs.max)[Math.floor(runs.length / 2)]!;
    const rows = Object.entries(middle.redis.commands)
      .filter(([, c]) => Math.abs(c.perResume) >= 0.05)
      .sort((a, b) => b[1].perResume - a[1].perResume);
    lines.push(
      "",
      `Redis commands per resume, run ${middle.repeat} (${middle.resumed} resumes in a window of ${num(middle.redis.windowMs)} ms). Commands a script runs count under their own names too. The AI nodes' appends and lease renewals go on meanwhile: the commands they run are their baseline ± its noise (net ${num(middle.redis.sharedNetPerResume)} per resume), and are not counted in the resume's figure.`,
      "",
      "| command | calls in the window | at the baseline rate | per resume |",
      "| --- | --- | --- | --- |",
      ...rows.map(([name, c]) => `| ${name} | ${num(c.window)} | ${num(c.baseline)} | ${num(c.perResume)} |`),
      "",
      "| target | this run |",
      "| --- | --- |",
      `| every client of the killed gateway resumed within ${failover.targetMs / 1000} s | ${runs.every((r) => r.resumed === r.onVictim) ? "all resumed" : "**not all resumed**"}; slowest ${over(runs, (r) => r.resumeMs.max)} ms; ${yes(runs.every((r) => r.resumed === r.onVictim && r.resumeMs.max <= failover.targetMs))} |`,
      `| nothing lost or repeated (seqs, final text against the stored answer and the demo's text) | ${runs.reduce((s, r) => s + r.violations + r.resumeGaps + r.textMismatches + r.notDone, 0)} problems over ${runs.reduce((s, r) => s + r.checked, 0)} streams; ${yes(runs.every((r) => r.violations + r.resumeGaps + r.textMismatches + r.notDone === 0))} |`,
      `| Redis reads per resume bounded | ${over(runs, (r) => r.redis.commandsPerResume)} commands per resume (time to resume p50 ${over(runs, (r) => r.resumeMs.p50)}, p99 ${over(runs, (r) => r.resumeMs.p99)} ms) |`,
    );
  }
  const first = results.scenarios?.firstToken;
  if (first && first.runs.length > 0) {
    const o = first.options;
    const runs = first.runs;
    if (lines.length > 0) lines.push("");
    lines.push(
      `First token: ${o.rate} new chats per second, evenly spread, ${o.warmupSeconds} s warm-up then ${o.seconds} s measured, each a new conversation of one of ${o.sockets} sessions (each from its own address, its WebSocket open beforehand) through nginx to ${o.gateways} gateways and ${o.aiNodes} AI nodes (demo model, ${o.tokens} tokens at ${o.tokensPerSecond}/s). Added time = POST sent → first chunk on the WebSocket, less the demo provider's own time to its first token (measured in-process: ${over(runs, (r) => r.providerMs * 1000)} µs). Times in ms from the POST: its 202, the stream's start frame; and start → first chunk. Event-loop delay: the worst node's p99 / max over the measured window, from the nodes' own /metrics, beyond prom-client's 10 ms sampling period.`,
      "",
      "| run | chats | added p50 | added p99 | added max | 202 p50 / p99 | start p50 / p99 | start → chunk p50 / p99 | event-loop delay p99 / max | failed | send lag p99 | other work % | passes |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const r of runs) {
      lines.push(
        `| ${r.repeat} | ${r.chats} | ${num(r.addedMs.p50)} | ${num(r.addedMs.p99)} | ${num(r.addedMs.max)} | ${num(r.acceptedMs.p50)} / ${num(r.acceptedMs.p99)} | ${num(r.startMs.p50)} / ${num(r.startMs.p99)} | ${num(r.startToChunkMs.p50)} / ${num(r.startToChunkMs.p99)} | ${num(worstDelay(r.eventLoopMs).p99)} / ${num(worstDelay(r.eventLoopMs).max)} | ${r.failed} | ${num(r.sendLagMs.p99)} | ${num(r.othersPercent)} | ${yes(r.pass)} |`,
      );
    }
    if (runs.length > 1)
      lines.push(
        `| median [range] | ${over(runs, (r) => r.chats)} | ${over(runs, (r) => r.addedMs.p50)} | ${over(runs, (r) => r.addedMs.p99)} | ${over(runs, (r) => r.addedMs.max)} | ${over(runs, (r) => r.acceptedMs.p50)} / ${over(runs, (r) => r.acceptedMs.p99)} | ${over(runs, (r) => r.startMs.p50)} / ${over(runs, (r) => r.startMs.p99)} | ${over(runs, (r) => r.startToChunkMs.p50)} / ${over(runs, (r) => r.startToChunkMs.p99)} | ${over(runs, (r) => worstDelay(r.eventLoopMs).p99)} / ${over(runs, (r) => worstDelay(r.eventLoopMs).max)} | ${over(runs, (r) => r.failed)} | ${over(runs, (r) => r.sendLagMs.p99)} | ${over(runs, (r) => r.othersPercent)} | |`,
      );
    lines.push(
      "",
      "| target | this run |",
      "| --- | --- |",
      `| time added to the first token ≤ ${first.targetMs} ms p99 at ${o.rate} new chats/s | ${over(runs, (r) => r.addedMs.p99)} ms; ${yes(runs.every((r) => r.addedMs.p99 <= first.targetMs && r.failed === 0))} |`,
    );
  }
  const capacity = results.scenarios?.capacity;
  if (capacity) {
    const c = capacity;
    if (lines.length > 0) lines.push("");
    lines.push(
      `Capacity: idle sockets on one gateway, each a \`hello\` without a token (a new session and a channel subscription), opened by two client processes straight to the gateway (nginx's worker needs two descriptors per socket), held ${c.options.holdMs / 1000} s, then counted by the gateway's own \`chatgrid_sockets_open\`. The gateway's open-file limit: ${num(c.fileLimit.soft)} (hard ${num(c.fileLimit.hard)}), ${c.descriptorsAtStart} open before the sockets.`,
      "",
      "| sockets asked for | opened | held after the hold | KiB per socket (RSS growth) | gateway RSS MiB | seconds to open | passes |",
      "| --- | --- | --- | --- | --- | --- | --- |",
      `| ${num(c.requested)} | ${num(c.opened)} | ${num(c.heldAfterHold)} | ${num(c.kibPerSocket)} | ${num(c.rssMiB)} | ${num(c.openSeconds)} | ${yes(c.pass)} |`,
      "",
      "| target | this run |",
      "| --- | --- |",
      `| one gateway holds ${num(c.options.target)} idle sockets | ${c.pass && c.requested >= c.options.target ? "**met**" : c.pass ? `held all ${num(c.requested)} asked for; ${num(c.options.target)} not tried: ${c.limitedBy ?? ""}` : "**not met**"} |`,
    );
  }
  const floor = results.scenarios?.redisFloor;
  if (floor && floor.variants.length > 0) {
    const o = floor.options;
    if (lines.length > 0) lines.push("");
    lines.push(
      `Redis per chunk, by what it does (bench/redis-floor.ts): one Redis as the runner runs it (AOF everysec), ${num(o.streams)} streams at ${o.rate} chunks/s for ${o.seconds} s per variant, one subscriber on every stream's channel, each variant on a fresh Redis, ${o.rounds} rounds; Redis's CPU per chunk from its own accounting (INFO cpu), median [range].`,
      "",
      "| what Redis does per chunk | Redis µs per chunk |",
      "| --- | --- |",
      ...floor.variants.map((v) => `| ${FLOOR_LABELS[v.variant]} | ${num(v.median)} [${num(v.min)}–${num(v.max)}] |`),
    );
  }
  return lines;
}

const FLOOR_LABELS: Record<FloorVariant, string> = {
  publish: "PUBLISH only (the bare relay's and the Socket.IO emitter's cost)",
  "xadd+publish":
    "XADD to a Redis stream as the history + PUBLISH, pipelined, no script and no checks (a chunk kept and delivered as chatgrid's were before its text list became their history)",
  "script, 1 per call":
    "chatgrid's chunk script, one chunk per call (RPUSH onto the text list: the fence, the seq check and the history; then PUBLISH)",
  "script, batched": "chatgrid's chunk script, the chunks of one turn of the event loop per call (the AI node's path)",
};

function p99Figure(results: BenchResults): string {
  const series: LineSeries[] = ordered(results).map((system) => {
    const fixed = results.aggregates
      .filter((a) => a.system === system)
      .map((a) => ({
        x: (a.streams * a.rate) / 1000,
        y: a.metrics.p99!.median,
        low: a.metrics.p99!.min,
        high: a.metrics.p99!.max,
        failed: !a.pass,
      }));
    const knee = results.points
      .filter((p: PointResult) => p.system === system && p.kind === "knee")
      .map((p) => ({ x: p.targetChunksPerSecond / 1000, y: p.latencyMs.p99, failed: !p.pass }));
    return { name: SYSTEM_LABELS[system], color: COLORS[system], points: [...fixed, ...knee] };
  });
  return lineChart({
    title: `p99 end to end against load (${results.options.rate} chunks/s per stream, through nginx)`,
    xLabel: "load (thousand chunks/s); hollow: failed (loss, p99 or publisher behind)",
    yLabel: "p99 (ms, log)",
    series,
    logY: true,
    threshold: { y: P99_LIMIT_MS, label: `${P99_LIMIT_MS} ms (knee criterion)` },
  });
}

function cpuFigure(results: BenchResults): string {
  const groups: BarGroup[] = results.options.loads.map((streams) => ({
    label: `${num(streams)} streams`,
    bars: ordered(results).map((system) => {
      const m = aggregateOf(results, system, streams)?.metrics ?? {};
      return {
        label: SHORT[system],
        segments: (["relay", "nginx", "redis", "publisher"] as const).map((name) => ({
          name,
          value: m[`cpu.${name}`]?.median ?? Number.NaN,
          color: PROCESS_COLORS[name],
        })),
      };
    }),
  }));
  return stackedBarChart({
    title: "CPU per delivered chunk, by process (median, /proc)",
    yLabel: "µs per chunk",
    groups,
    legend: [
      { name: "relay / gateway", color: PROCESS_COLORS.relay },
      { name: "nginx", color: PROCESS_COLORS.nginx },
      { name: "Redis", color: PROCESS_COLORS.redis },
      { name: "publisher (AI node)", color: PROCESS_COLORS.publisher },
    ],
  });
}

function memoryFigure(results: BenchResults): string {
  const groups: BarGroup[] = memoryBySystem(results).map((m) => ({
    label: SHORT[m.system],
    bars: [
      {
        label: "",
        segments: [
          { name: "relay / gateway", value: m.relay.median, color: PROCESS_COLORS.relay },
          { name: "nginx", value: m.nginx.median, color: PROCESS_COLORS.nginx },
          { name: "Redis", value: m.redis.median, color: PROCESS_COLORS.redis },
        ],
      },
    ],
  }));
  return stackedBarChart({
    title: `Memory per idle socket (RSS growth over ${num(results.options.idleSockets)} sockets)`,
    yLabel: "KiB per socket",
    groups,
    legend: [
      { name: "relay / gateway", color: PROCESS_COLORS.relay },
      { name: "nginx", color: PROCESS_COLORS.nginx },
      { name: "Redis", color: PROCESS_COLORS.redis },
    ],
    height: 300,
  });
}

export function renderFigures(results: BenchResults): Record<(typeof FIGURES)[number], string> {
  return {
    "p99-vs-load.svg": p99Figure(results),
    "cpu-per-chunk.svg": cpuFigure(results),
    "memory-per-socket.svg": memoryFigure(results),
  };
}

/** A file-name stamp: 2026-12-01T14-53-40Z. */
export const stamp = (iso: string): string => iso.replace(/\.\d+Z$/, "Z").replace(/:/g, "-");

export interface WrittenRun {
  json: string;
  markdown: string;
  figures: string[];
}

/** Writes `<dir>/<stamp>.json`, `<stamp>.md` and `<stamp>-figures/*.svg`. */
export function writeRun(results: RunResults, dir = RESULTS_DIR): WrittenRun {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, stamp(results.startedAt));
  const json = `${base}.json`;
  writeFileSync(json, `${JSON.stringify(results, null, 1)}\n`);
  const figureDir = `${base}-figures`;
  // The comparison's figures (a run of the scenarios alone has none).
  const rendered: Partial<Record<(typeof FIGURES)[number], string>> =
    results.points.length > 0 ? renderFigures(results) : {};
  if (Object.keys(rendered).length > 0) mkdirSync(figureDir, { recursive: true });
  const figures = Object.entries(rendered).map(([name, svg]) => {
    const file = join(figureDir, name);
    writeFileSync(file, svg);
    return file;
  });
  const markdown = `${base}.md`;
  writeFileSync(markdown, renderMarkdown(results, `${stamp(results.startedAt)}-figures`));
  return { json, markdown, figures };
}

/** The newest results JSON in the results dir. */
export function latestResults(dir = RESULTS_DIR): string {
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .sort()
    : [];
  if (files.length === 0) throw new Error(`no results in ${dir}: run npm run bench first`);
  return join(dir, files.at(-1)!);
}

/** Replaces the generated section of a Markdown text (appends one when the markers are missing). */
export function replaceSection(markdown: string, section: string): string {
  const block = `${MARKER_START}\n${section}${MARKER_END}`;
  const start = markdown.indexOf(MARKER_START);
  const end = markdown.indexOf(MARKER_END);
  if (start < 0 || end < start) return `${markdown.trimEnd()}\n\n${block}\n`;
  return `${markdown.slice(0, start)}${block}${markdown.slice(end + MARKER_END.length)}`;
}

/** Writes a run's figures into docs/benchmarks/ and its tables into docs/benchmarks.md, between the markers. */
export function updateDocs(results: RunResults, docsFile = DOCS_FILE, figuresDir = DOCS_FIGURES): string[] {
  mkdirSync(figuresDir, { recursive: true });
  const written = Object.entries(renderFigures(results)).map(([name, svg]) => {
    const file = join(figuresDir, name);
    writeFileSync(file, svg);
    return file;
  });
  const current = existsSync(docsFile) ? readFileSync(docsFile, "utf8") : "# Benchmarks\n";
  writeFileSync(docsFile, replaceSection(current, renderMarkdown(results, "benchmarks")));
  return [docsFile, ...written];
}
