import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchResults, KneeResult } from "../../bench/harness";
import { FLOOR_VARIANTS } from "../../bench/redis-floor";
import {
  kneeAgainstBare,
  kneeBySystem,
  kneeRatio,
  kneeTable,
  MARKER_END,
  MARKER_START,
  renderMarkdown,
  scenarioTables,
  updateDocs,
  writeRun,
} from "../../bench/report";
import {
  type RunResults,
  runScenarios,
  SCENARIO_SMOKE,
  type ScenarioResults,
  scenarioSmokeProblems,
} from "../../bench/scenarios";
import { runSmoke, SMOKE_OPTIONS, type SmokeRun } from "../../bench/smoke";

/**
 * The benchmark harness end to end (docs/benchmarks.md, "Smoke"): every system (bare relay, Socket.IO, chatgrid)
 * behind the same rendered nginx with its own Redis, a publisher and two client processes, a tiny load for a few
 * seconds, idle sockets, then the JSON, the tables and the figures. It checks the harness, not speed: no figure is
 * asserted against a target.
 */
describe("npm run bench -- --smoke", () => {
  const out = mkdtempSync(join(tmpdir(), "chatgrid-bench-smoke-"));
  let run: SmokeRun;

  beforeAll(async () => {
    run = await runSmoke(out);
  }, 110_000);

  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
  });

  it("delivers every measured chunk of every system exactly once", () => {
    expect(run.problems).toEqual([]);
    const { loads, rate, seconds } = SMOKE_OPTIONS;
    expect(run.results.points.map((p) => p.system)).toEqual(["bare", "socketio", "chatgrid"]);
    for (const p of run.results.points) {
      expect(p.expected).toBe(loads[0]! * rate * seconds);
      expect({ system: p.system, delivered: p.delivered, lost: p.lost, duplicated: p.duplicated }).toEqual({
        system: p.system,
        delivered: p.expected,
        lost: 0,
        duplicated: 0,
      });
      expect(p.reordered).toBe(0);
      expect(p.unexpectedCloses).toBe(0);
      expect(p.publisher.failures).toEqual({});
      expect(p.publisher.published).toBe(loads[0]! * rate * (seconds + SMOKE_OPTIONS.warmupSeconds));
      expect(p.latencyMs.p50).toBeGreaterThan(0);
      expect(p.latencyMs.p50).toBeLessThanOrEqual(p.latencyMs.p99);
      expect(p.latencyMs.p99).toBeLessThanOrEqual(p.latencyMs.max);
      // Each of the measured processes ran: CPU was read from /proc for every one.
      for (const name of ["relay", "nginx", "redis", "publisher", "clients"] as const) {
        expect(Number.isFinite(p.cpuUsPerChunk[name]), `${p.system} ${name}`).toBe(true);
      }
    }
  });

  it("measures each system's own Redis work: a PUBLISH per chunk, and chatgrid's append script with history", () => {
    const [bare, socketio, chatgrid] = run.results.points;
    for (const p of [bare!, socketio!]) {
      expect(p.redis.commands.publish?.calls ?? 0).toBeGreaterThan(0);
      expect(p.redis.commands.evalsha).toBeUndefined();
      expect(p.redis.commands.xadd).toBeUndefined();
    }
    // The script keeps the chunk in the text list (RPUSH: it is the history too, no XADD per chunk) and publishes
    // from inside, one of each per chunk; one call appends the chunks of one turn of the publisher's event loop
    // (docs/redis.md "Appending chunks"), so calls are at most chunks.
    const script = chatgrid!.redis.commands.evalsha;
    const { rpush, publish, xadd } = chatgrid!.redis.commands;
    expect(publish?.calls ?? 0).toBeGreaterThan(chatgrid!.expected * 0.5);
    expect(rpush?.calls ?? 0).toBeGreaterThanOrEqual(publish!.calls);
    expect(xadd?.calls ?? 0).toBeLessThan(publish!.calls * 0.1);
    expect(script?.calls ?? 0).toBeGreaterThan(0);
    expect(script!.calls).toBeLessThanOrEqual(publish!.calls);
    expect(script!.usecPerChunk).toBeGreaterThan(publish!.usecPerCall);
  });

  it("puts every system behind the same nginx configuration, and measures idle sockets", () => {
    const shapes = run.results.nginxConfShapes;
    expect(Object.keys(shapes).sort()).toEqual(["bare", "chatgrid", "socketio"]);
    expect(new Set(Object.values(shapes)).size).toBe(1);
    expect(run.results.memory.map((m) => [m.system, m.opened])).toEqual([
      ["bare", SMOKE_OPTIONS.idleSockets],
      ["socketio", SMOKE_OPTIONS.idleSockets],
      ["chatgrid", SMOKE_OPTIONS.idleSockets],
    ]);
    for (const m of run.results.memory) expect(m.rssBeforeKiB.relay).toBeGreaterThan(0);
  });

  it("writes the JSON, the Markdown tables and the SVG figures", () => {
    const json = JSON.parse(readFileSync(run.written.json, "utf8")) as BenchResults;
    expect(json.version).toBe(1);
    expect(json.mode).toBe("smoke");
    expect(json.points).toHaveLength(3);
    expect(json.environment.cores).toBeGreaterThan(0);
    expect(json.environment.redis).toMatch(/^\d+\.\d+/);
    expect(json.environment.nginx).toMatch(/^\d+\.\d+/);

    const markdown = readFileSync(run.written.markdown, "utf8");
    for (const label of ["bare relay", "Socket.IO + Redis adapter", "chatgrid (1 gateway)"]) {
      expect(markdown).toMatch(
        new RegExp(`\\| 20 × 20/s \\| ${label.replace(/[()+.]/g, "\\$&")} \\| 400 \\| 0 / 0 \\|`),
      );
    }
    expect(markdown).toContain("| evalsha |");
    // Each absolute target beside the bare relay's figure of the same run, and chatgrid's multiple of it.
    expect(markdown).toContain("| target | this run | the bare relay, same run |");
    expect(markdown).toMatch(/\| p99 ≤ 3 ms at 20 streams \| [^|]+ ms \| [\d.]+ ms \(chatgrid [\d.]+ ×\) \|/);
    expect(markdown).toMatch(
      /\| Redis CPU ≤ 8 µs per chunk [^|]+\| [^|]+\| [\d.]+ µs, its PUBLISH \(chatgrid [\d.]+ ×\) \|/,
    );
    const targetRows = markdown.slice(markdown.indexOf("| target | this run |")).split("\n\n")[0]!;
    // A figure that could not be computed prints "—": every target row of a full comparison has its figures.
    expect(targetRows).not.toMatch(/—|NaN|undefined/);

    expect(run.written.figures.map((f) => f.split("/").at(-1)).sort()).toEqual([
      "cpu-per-chunk.svg",
      "memory-per-socket.svg",
      "p99-vs-load.svg",
    ]);
    for (const file of run.written.figures) {
      const svg = readFileSync(file, "utf8");
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      expect(svg).not.toMatch(/NaN|undefined|Infinity/);
      expect(svg.length).toBeLessThan(20_000);
    }
    expect(readFileSync(run.written.figures.find((f) => f.endsWith("p99-vs-load.svg"))!, "utf8")).toMatch(
      /<circle[^>]+>.*<circle[^>]+>.*<circle/s,
    );
  });

  it("updates a docs file between its markers, keeping the rest", () => {
    const docs = join(out, "benchmarks.md");
    writeFileSync(docs, `# Benchmarks\n\nintro\n\n${MARKER_START}\nold figures\n${MARKER_END}\n\n## After\n`);
    const written = updateDocs(run.results, docs, join(out, "figures"));
    const text = readFileSync(docs, "utf8");
    expect(text.startsWith("# Benchmarks\n\nintro\n\n")).toBe(true);
    expect(text.endsWith(`${MARKER_END}\n\n## After\n`)).toBe(true);
    expect(text).not.toContain("old figures");
    expect(text).toContain("](benchmarks/p99-vs-load.svg)");
    expect(written.slice(1).every((f) => existsSync(f))).toBe(true);
  });
});

/**
 * The scenarios of docs/benchmarks.md ("Scenarios") at a tiny load, each on its own cluster of the process runner
 * behind nginx: a gateway SIGKILLed under live streams (its clients resume through nginx, nothing lost or repeated,
 * every text equal to the stored answer and the demo model's), and new chats timed to their first token. No speed
 * is asserted.
 */
describe("npm run bench -- --scenarios failover,first-token,redis-floor,capacity, at a tiny load", () => {
  const out = mkdtempSync(join(tmpdir(), "chatgrid-bench-scenarios-"));
  let scenarios: ScenarioResults;

  beforeAll(async () => {
    scenarios = await runScenarios(
      ["failover", "first-token", "redis-floor", "capacity"],
      SCENARIO_SMOKE,
      () => undefined,
    );
  }, 90_000);

  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
  });

  it("resumes every client of the killed gateway on the other one, with every seq once and the exact text", () => {
    expect(scenarioSmokeProblems(scenarios, ["failover", "first-token", "redis-floor", "capacity"])).toEqual([]);
    const run = scenarios.failover!.runs[0]!;
    expect(run.onVictim + run.onOthers).toBe(SCENARIO_SMOKE.failover.streams);
    expect(run.onVictim).toBeGreaterThan(0);
    expect(run.onOthers).toBeGreaterThan(0);
    expect(run.resumed).toBe(run.onVictim);
    expect(run.landedOn).toEqual({ "gateway-2": run.onVictim });
    expect(run.checked).toBe(SCENARIO_SMOKE.failover.streams);
    expect({
      violations: run.violations,
      gaps: run.resumeGaps,
      notDone: run.notDone,
      texts: run.textMismatches,
    }).toEqual({ violations: 0, gaps: 0, notDone: 0, texts: 0 });
    expect(run.othersClosed).toBe(0);
    expect(run.closeMs.p50).toBeLessThanOrEqual(run.welcomeMs.p50);
    expect(run.welcomeMs.max).toBeLessThanOrEqual(run.resumeMs.max);
    // A resume reads the stream's meta and its history after afterSeq: both show in Redis's own counts.
    expect(run.redis.commands.hgetall?.perResume ?? 0).toBeGreaterThan(0);
    expect(run.redis.commands.xrange?.perResume ?? 0).toBeGreaterThan(0);
  });

  it("opens idle sockets straight to one gateway and counts them with the gateway's own metric after the hold", () => {
    const c = scenarios.capacity!;
    expect(c.requested).toBe(SCENARIO_SMOKE.capacity.sockets);
    expect({ opened: c.opened, held: c.heldAfterHold, pass: c.pass }).toEqual({
      opened: c.requested,
      held: c.requested,
      pass: true,
    });
    expect(c.fileLimit.soft).toBeGreaterThan(c.requested);
    expect(Number.isFinite(c.kibPerSocket)).toBe(true);
  });

  it("measures what a chunk costs Redis by what Redis does for it, every variant delivering every chunk", () => {
    const floor = scenarios.redisFloor!;
    expect(floor.variants.map((v) => v.variant)).toEqual([...FLOOR_VARIANTS]);
    // At this tiny load (1,000 chunks a variant, beside the other test files) Redis's fixed costs drown the
    // differences between variants, so only the harness is checked: each variant ran on its own Redis, every chunk
    // reached the subscriber (runRedisFloor fails otherwise), and Redis's own accounting counted its work.
    for (const v of floor.variants) {
      expect(v.usPerChunk).toHaveLength(SCENARIO_SMOKE.redisFloor.rounds);
      expect(v.median, v.variant).toBeGreaterThan(0);
    }
  });

  it("times every new chat to its first chunk, and writes both scenarios into the run's JSON and tables", () => {
    const run = scenarios.firstToken!.runs[0]!;
    const o = SCENARIO_SMOKE.firstToken;
    expect(run.chats).toBe(Math.round(o.seconds * o.rate));
    expect(run.failed).toBe(0);
    expect(run.addedMs.p50).toBeGreaterThan(0);
    expect(run.addedMs.p50).toBeLessThanOrEqual(run.addedMs.p99);
    expect(run.startMs.p50).toBeLessThanOrEqual(run.addedMs.max + run.providerMs);
    expect(run.providerMs).toBeLessThan(5);
    // Every node's event-loop delay was read from its own /metrics, beyond the 10 ms sampling period.
    const delays = Object.values(run.eventLoopMs);
    expect(delays).toHaveLength(o.gateways + o.aiNodes);
    for (const d of delays) {
      expect(d.p99).toBeGreaterThanOrEqual(0);
      expect(d.p99).toBeLessThanOrEqual(d.max);
      expect(d.max).toBeLessThan(1000);
    }

    const results: RunResults = { ...(emptyRun() as RunResults), scenarios };
    const written = writeRun(results, out);
    const json = JSON.parse(readFileSync(written.json, "utf8")) as RunResults;
    expect(json.scenarios?.failover?.runs).toHaveLength(1);
    expect(json.scenarios?.firstToken?.runs).toHaveLength(1);
    const tables = scenarioTables(results).join("\n");
    expect(tables).toContain("| every client of the killed gateway resumed within 3 s |");
    expect(tables).toContain("| time added to the first token ≤ 10 ms p99 at 10 new chats/s |");
    // Without comparison points the Markdown is the environment line and the scenarios' tables, no figures.
    expect(readFileSync(written.markdown, "utf8")).toBe(renderMarkdown(results, "unused"));
    expect(written.figures).toEqual([]);
    expect(tables).not.toMatch(/NaN|undefined/);
  });
});

describe("the knee over repeated searches", () => {
  const knee = (system: KneeResult["system"], repeat: number | undefined, streams: number): KneeResult => ({
    system,
    ...(repeat !== undefined ? { repeat } : {}),
    streams,
    chunksPerSecond: streams * 20,
    atLeast: false,
    failedAt: streams + 100,
    probes: [{ streams: streams + 100, pass: false, p99Ms: 80, lost: 0, failReasons: ["p99 80 ms"] }],
  });

  it("is each system's median, and the target is the ratio of the medians with the side-by-side ratios' range", () => {
    const results = {
      ...emptyRun(),
      knees: [
        knee("socketio", 1, 1000),
        knee("chatgrid", 1, 1500),
        knee("socketio", 2, 1250),
        knee("chatgrid", 2, 1700),
        knee("socketio", 3, 1100),
        knee("chatgrid", 3, 1600),
      ],
    } as BenchResults;
    expect(kneeBySystem(results).map((k) => [k.system, k.chunksPerSecond])).toEqual([
      ["socketio", { median: 22_000, min: 20_000, max: 25_000 }],
      ["chatgrid", { median: 32_000, min: 30_000, max: 34_000 }],
    ]);
    const times = kneeRatio(results)!;
    expect(times.median).toBeCloseTo(32 / 22, 6);
    // Search by search: 1.5, 1.36, 1.4545 (never one system's best against the other's worst).
    expect(times.min).toBeCloseTo(1.36, 6);
    expect(times.max).toBeCloseTo(1.5, 6);
    const table = kneeTable(results).join("\n");
    expect(table).toContain("3 searches per system, systems interleaved, median [range]");
    expect(table).toContain("| chatgrid (1 gateway) | 32,000 [30,000–34,000] | 1 | 1,500 streams (fails at 1,600) |");
    expect(table).not.toMatch(/NaN|undefined/);
  });

  it("against the bare relay's knee: multiples of it, and bounds where a search still passed at its top", () => {
    const bySystem = (knees: KneeResult[]) => kneeBySystem({ ...emptyRun(), knees } as BenchResults);
    const [socketio, chatgrid, bare] = bySystem([
      knee("socketio", 1, 700),
      knee("chatgrid", 1, 1150),
      knee("bare", 1, 1400),
    ]);
    expect(kneeAgainstBare(bare!, chatgrid!, socketio!)).toBe("28,000 chunks/s (chatgrid 0.821 ×, Socket.IO 0.5 ×)");
    // The bare relay passed at the search's top: its knee is a floor, so a ratio to it is at most what it says.
    const atTop = { ...knee("bare", 1, 1400), atLeast: true };
    const [, , bareAtTop] = bySystem([knee("socketio", 1, 700), knee("chatgrid", 1, 1150), atTop]);
    expect(kneeAgainstBare(bareAtTop!, chatgrid!, socketio!)).toBe(
      "≥ 28,000 chunks/s (chatgrid ≤ 0.821 ×, Socket.IO ≤ 0.5 ×)",
    );
  });

  it("reads results written before the knee was repeated (one search, no repeat field)", () => {
    const results = { ...emptyRun(), knees: [knee("socketio", undefined, 1250), knee("chatgrid", undefined, 1700)] };
    expect(kneeRatio(results as BenchResults)?.median).toBeCloseTo(1.36, 6);
    expect(kneeBySystem(results as BenchResults)[1]!.runs).toHaveLength(1);
  });
});

/** A run with no comparison points: the scenarios alone (`npm run bench -- --scenarios …`). */
function emptyRun(): Omit<RunResults, "scenarios"> {
  return {
    version: 1,
    mode: "smoke",
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: 0,
    environment: {
      cpuModel: "test",
      cores: 2,
      memoryGiB: 1,
      kernel: "test",
      node: process.version,
      redis: "7",
      nginx: "1",
      socketIo: "-",
      date: new Date().toISOString(),
      commit: "test",
      dirty: false,
      loadAverageAtStart: [0, 0, 0],
    },
    options: { ...SMOKE_OPTIONS, systems: [] },
    nginxConfShapes: {},
    points: [],
    aggregates: [],
    knees: [],
    memory: [],
  };
}
