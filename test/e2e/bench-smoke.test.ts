import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchResults } from "../../bench/harness";
import { MARKER_END, MARKER_START, updateDocs } from "../../bench/report";
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
    // The script keeps history (XADD) and publishes from inside: Redis counts both under the script's own calls.
    const script = chatgrid!.redis.commands.evalsha;
    expect(script?.calls ?? 0).toBeGreaterThan(chatgrid!.expected * 0.5);
    expect(chatgrid!.redis.commands.xadd?.calls).toBe(script?.calls);
    expect(chatgrid!.redis.commands.publish?.calls).toBe(script?.calls);
    expect(script!.usecPerCall).toBeGreaterThan(chatgrid!.redis.commands.publish!.usecPerCall);
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
