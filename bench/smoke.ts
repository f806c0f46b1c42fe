/**
 * The benchmark's smoke mode (docs/benchmarks.md, "Smoke"): every system at a tiny load for a few seconds, through
 * the whole harness: stacks, publisher and client processes, JSON, tables and figures. test/e2e/bench-smoke.test.ts
 * runs it as part of `npm test`.
 */
import { type BenchOptions, type BenchResults, runBench, smokeProblems } from "./harness";
import { SYSTEMS } from "./protocol";
import { renderFigures, renderMarkdown, type WrittenRun, writeRun } from "./report";

export const SMOKE_OPTIONS: Omit<BenchOptions, "log"> = {
  systems: [...SYSTEMS],
  loads: [20],
  rate: 20,
  repeats: 1,
  warmupSeconds: 1,
  seconds: 2,
  idleSockets: 100,
  knee: false,
  kneeSeconds: 2,
  kneeProbes: 0,
  kneeMaxStreams: 20,
  clientProcesses: 2,
  mode: "smoke",
};

export interface SmokeRun {
  results: BenchResults;
  written: WrittenRun;
  /** Empty when the harness worked end to end. */
  problems: string[];
}

/** Runs the smoke plan and writes its output into `outDir`; `problems` says what did not hold. */
export async function runSmoke(outDir: string, log: (line: string) => void = () => undefined): Promise<SmokeRun> {
  const results = await runBench({ ...SMOKE_OPTIONS, log });
  const written = writeRun(results, outDir);
  const problems = smokeProblems(results);
  const markdown = renderMarkdown(results, "figures");
  for (const system of SMOKE_OPTIONS.systems) {
    if (!markdown.includes(`| ${SMOKE_OPTIONS.loads[0]} × ${SMOKE_OPTIONS.rate}/s |`)) problems.push("no load row");
    if (!markdown.includes(system === "chatgrid" ? "chatgrid" : system === "bare" ? "bare relay" : "Socket.IO"))
      problems.push(`${system} missing from the tables`);
  }
  for (const [name, svg] of Object.entries(renderFigures(results))) {
    if (!svg.startsWith("<svg") || !svg.trimEnd().endsWith("</svg>")) problems.push(`${name} is not an SVG document`);
  }
  return { results, written, problems };
}
