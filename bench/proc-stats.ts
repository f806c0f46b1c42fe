/**
 * Per-process CPU and memory from /proc (Linux), for docs/benchmarks.md ("What is measured").
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux we know, asked once). */
const CLOCK_TICKS = (() => {
  const out = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
  return Number.isInteger(out) && out > 0 ? out : 100;
})();

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system, every thread) a process has used, in ms, plus what its children that have ended and
 * were waited for used (cutime + cstime: Redis's AOF rewrite children, nginx's replaced workers). 0 when it is gone.
 */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  if (!fields) return 0;
  // utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] here is field 3 (state).
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / CLOCK_TICKS;
}

/** The live children of a process (nginx's workers, a Redis fork that is rewriting the AOF). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields && Number(fields[1]) === pid) children.push(Number(entry));
  }
  return children;
}

/** CPU ms of a process and its live children (each counted with its own ended children). */
export const treeCpuMs = (pid: number): number => [pid, ...childrenOf(pid)].reduce((sum, p) => sum + cpuMs(p), 0);

/** Resident set size in KiB (NaN when the process is gone). */
export function rssKiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

/** RSS of a process and its live children, in KiB. */
export const treeRssKiB = (pid: number): number => [pid, ...childrenOf(pid)].reduce((sum, p) => sum + rssKiB(p), 0);

/**
 * CPU time the whole machine spent busy (every core: all but idle and iowait), in ms, from /proc/stat: what the
 * benchmark's processes did not use of it is other work on the machine.
 */
export function machineBusyMs(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal …
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return (busy * 1000) / CLOCK_TICKS;
}
