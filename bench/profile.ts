/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) of the gateway: self time by function and by module, the
 * evidence for docs/benchmarks.md ("What to cut next").
 */
import { readFileSync } from "node:fs";
import { REPO_ROOT } from "../infra/runner";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** µs on CLOCK_MONOTONIC (V8's TimeTicks), the clock of bench/stats.ts nowMs() × 1000. */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  /** Share of the samples in which the process was not idle, %. */
  percent: number;
  ms: number;
}

export interface ProfileSummary {
  /** The samples counted: those of the window given (nowMs() clock), or all of them. */
  window: "measured" | "whole profile";
  /** Profiled time in which the process ran (not idle), ms. */
  busyMs: number;
  functions: ProfileRow[];
  modules: ProfileRow[];
}

/** Where a function comes from: a package, a Node built-in, a file of this repository, or V8's own buckets. */
function moduleOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith("node:")) return url;
  const local = url.replace(/^file:\/\//, "").replace(`${REPO_ROOT}/`, "");
  return local.split("/").slice(0, 3).join("/");
}

/** Self time by function and module, of the samples within `window` (nowMs() ms) when it overlaps the profile. */
export function summarizeProfile(file: string, window?: { startMs: number; endMs: number }, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const hitsOf = new Map<number, number>();
  let at = profile.startTime;
  let counted = 0;
  const inWindow = (t: number) => !window || (t >= window.startMs * 1000 && t <= window.endMs * 1000);
  const overlaps =
    window !== undefined && profile.startTime <= window.endMs * 1000 && profile.endTime >= window.startMs * 1000;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (overlaps && !inWindow(at)) return;
    hitsOf.set(id, (hitsOf.get(id) ?? 0) + 1);
    counted++;
  });
  const spanMs = overlaps ? window!.endMs - window!.startMs : (profile.endTime - profile.startTime) / 1000;
  const msPerSample = spanMs / Math.max(1, counted);
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const hits = hitsOf.get(node.id) ?? 0;
    if (hits === 0 || node.callFrame.functionName === "(idle)") continue;
    busy += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const short = url.replace(/^file:\/\//, "").replace(`${REPO_ROOT}/`, "");
    const name = `${functionName || "(anonymous)"}${short ? ` ${short}:${lineNumber + 1}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    const module = moduleOf(url, functionName);
    byModule.set(module, (byModule.get(module) ?? 0) + hits);
  }
  const rows = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({
        name,
        percent: Math.round((1000 * hits) / Math.max(1, busy)) / 10,
        ms: Math.round(hits * msPerSample),
      }));
  return {
    window: overlaps ? "measured" : "whole profile",
    busyMs: Math.round(busy * msPerSample),
    functions: rows(byFunction),
    modules: rows(byModule),
  };
}

export function profileMarkdown(summary: ProfileSummary): string {
  const table = (title: string, rows: ProfileRow[]) => [
    `| ${title} | % of busy time | ms |`,
    "| --- | --- | --- |",
    ...rows.map((r) => `| \`${r.name}\` | ${r.percent} | ${r.ms} |`),
  ];
  return [
    `Busy (not idle) time profiled: ${summary.busyMs} ms (${summary.window === "measured" ? "the measured window only" : "the whole profile, start-up included"}).`,
    "",
    ...table("module (self time)", summary.modules),
    "",
    ...table("function (self time)", summary.functions),
    "",
  ].join("\n");
}
