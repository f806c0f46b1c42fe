/**
 * Capacity (docs/benchmarks.md "Scenarios"): how many idle sockets one gateway holds, and what they cost it. One
 * chatgrid stack as the comparison runs it; N sockets, each a `hello` without a token (a new session and a channel
 * subscription), opened by the two client processes straight to the gateway: nginx's worker needs two descriptors
 * per proxied socket, so on a machine whose processes may open F files nginx gives out at F / 2 sockets, long
 * before the gateway does. N defaults to what the gateway's own open-file limit leaves room for, up to 20,000.
 * Passes when every socket opened, all of them are still open after a settle period (the gateway's own
 * `chatgrid_sockets_open` says so), and the gateway is still live.
 */
import { readdirSync, readFileSync } from "node:fs";
import { BenchChild } from "./ipc";
import { sampleValue } from "./metrics-text";
import { rssKiB } from "./proc-stats";
import { startStack } from "./stack";
import { round, sleep } from "./stats";

export interface CapacityOptions {
  /** Sockets to open; 0: as many as the gateway's open-file limit leaves room for, up to `target`. */
  sockets: number;
  /** The issue's target: one gateway holds this many. */
  target: number;
  /** How long the sockets stay open before they are counted again (idle: no timer may close them). */
  holdMs: number;
  log: (line: string) => void;
}

export const CAPACITY_DEFAULTS: Omit<CapacityOptions, "log"> = { sockets: 0, target: 20_000, holdMs: 10_000 };

export interface CapacityResults {
  options: Omit<CapacityOptions, "log">;
  /** The gateway's open-file limit (soft / hard), and the descriptors it had before the sockets. */
  fileLimit: { soft: number; hard: number };
  descriptorsAtStart: number;
  requested: number;
  opened: number;
  /** `chatgrid_sockets_open` after the hold. */
  heldAfterHold: number;
  /** RSS growth per socket, KiB, and the gateway's RSS at the end, MiB. */
  kibPerSocket: number;
  rssMiB: number;
  openSeconds: number;
  /** Why fewer than `target` were asked for, when they were. */
  limitedBy?: string;
  pass: boolean;
}

/** The warm-up each client process opens first, so the figure is the sockets' own cost. */
const WARMUP = 50;
/** Descriptors left to the gateway for its own work (Redis, listeners, files) beyond the sockets. */
const HEADROOM = 100;

function fileLimit(pid: number): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line?.match(/\d+|unlimited/g) ?? []).map((v) => (v === "unlimited" ? Infinity : Number(v)));
  if (soft === undefined || hard === undefined) throw new Error(`no open-file limit in /proc/${pid}/limits`);
  return { soft, hard };
}

async function socketsOpen(metricsUrl: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const value = sampleValue(text, "chatgrid_sockets_open");
  if (value === undefined) throw new Error("the gateway's metrics have no chatgrid_sockets_open");
  return value;
}

export async function runCapacity(options: CapacityOptions): Promise<CapacityResults> {
  const clients = [
    BenchChild.start("capacity-clients-1", "clients.ts"),
    BenchChild.start("capacity-clients-2", "clients.ts"),
  ];
  const stack = await startStack("chatgrid", { maxSockets: 1000, log: options.log });
  try {
    const pid = stack.pids.relay;
    const limit = fileLimit(pid);
    const descriptorsAtStart = readdirSync(`/proc/${pid}/fd`).length;
    const room = limit.soft - descriptorsAtStart - HEADROOM - WARMUP * clients.length;
    const requested = options.sockets > 0 ? options.sockets : Math.min(options.target, room);
    const limitedBy =
      requested < options.target
        ? `the gateway may open ${limit.soft} files (hard limit ${limit.hard}); ${descriptorsAtStart} were open before the sockets`
        : undefined;
    const system = "chatgrid";
    const entry = stack.relayUrl;
    await Promise.all(clients.map((c, k) => c.request("idle", { system, entry, count: WARMUP, prefix: `warm${k}` })));
    const before = rssKiB(pid);
    const started = Date.now();
    const halves = [Math.ceil(requested / 2), Math.floor(requested / 2)];
    const counts = await Promise.all(
      clients.map((c, k) =>
        c.request<{ opened: number }>("idle", { system, entry, count: halves[k], prefix: `cap${k}` }, 600_000),
      ),
    );
    const openSeconds = (Date.now() - started) / 1000;
    const opened = counts.reduce((sum, c) => sum + c.opened, 0) - WARMUP * clients.length;
    // Idle for a while: nothing of the gateway's may close an idle socket that said hello.
    await sleep(options.holdMs);
    const held = (await socketsOpen(stack.relayMetricsUrl)) - WARMUP * clients.length;
    const after = rssKiB(pid);
    const live = (await fetch(`${stack.relayMetricsUrl}/live`)).ok;
    const result: CapacityResults = {
      options: { sockets: options.sockets, target: options.target, holdMs: options.holdMs },
      fileLimit: limit,
      descriptorsAtStart,
      requested,
      opened,
      heldAfterHold: held,
      kibPerSocket: round((after - before) / Math.max(1, opened), 2),
      rssMiB: round(after / 1024, 1),
      openSeconds: round(openSeconds, 1),
      ...(limitedBy ? { limitedBy } : {}),
      pass: opened === requested && held === requested && live,
    };
    options.log(
      `capacity: ${opened} of ${requested} sockets opened in ${result.openSeconds} s, ${held} held after ${options.holdMs / 1000} s; ` +
        `${result.kibPerSocket} KiB per socket, gateway RSS ${result.rssMiB} MiB${limitedBy ? ` (${limitedBy})` : ""}`,
    );
    return result;
  } finally {
    for (const c of clients) c.kill();
    await stack.stop();
  }
}
